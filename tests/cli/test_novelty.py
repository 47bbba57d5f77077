"""`minact evolve` with follow-ups, ensembles and the model's context, against the loopback
OpenAI-compatible server: a copy gets a follow-up naming it, the recorded run replays
identically, each proposal's model is drawn reproducibly, and bad weights are usage errors."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.search.prompt import FOLLOW_UP_CHARS
from tests.conftest import TINY_TASKS
from tests.llm_server import LLMServer, Reply, serving

runner = CliRunner()
CACHE: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One cache for the module: the seeds train once."""
    CACHE.append(tmp_path_factory.mktemp("novelty-cache"))
    yield
    CACHE.pop()


def _evolve(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    common = ["--tasks", str(TINY_TASKS), "--cache-dir", str(CACHE[-1]), "--concurrency", "2"]
    common += ["--runs-dir", str(tmp / "runs"), "--llm-retries", "1"]
    return runner.invoke(app, ["evolve", *common, *args], env=env)


def _run_dir(tmp: Path) -> Path:
    (run,) = list((tmp / "runs").iterdir())
    return run


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _numbered(answer: Callable[[dict[str, Any], int], Reply]) -> Any:
    """Returns a server handler that passes `answer` each request and its number (from 1)."""
    lock, count = threading.Lock(), [0]

    def respond(body: dict[str, Any]) -> Reply:
        with lock:  # the server answers requests on several threads
            count[0] += 1
            n = count[0]
        return answer(body, n)

    return respond


def _copier() -> Any:
    """The first reply of every conversation copies the gelu seed; then a new function."""

    def respond(body: dict[str, Any], n: int) -> Reply:
        if len(body["messages"]) == 2:  # the opening request of a proposal
            return Reply("```python\nimport torch.nn.functional as F\ndef activation(x):\n"
                         "    return F.gelu(x)\n```")  # fmt: skip
        return Reply(
            f"```python\nimport torch\ndef activation(x):\n    return torch.sin({n} * x) + x\n```"
        )

    return _numbered(respond)


def test_a_copy_gets_a_follow_up_naming_it_and_the_record_replays(tmp_path: Path) -> None:
    with LLMServer(_copier()) as server:
        first = _evolve(tmp_path / "a", "--budget", "3", "--llm-url", server.url, "--record",
                        "--json")  # fmt: skip
        chat = [r.json for r in server.requests if r.path.endswith("/chat/completions")]
    assert first.exit_code == 0, first.stderr
    follow = [body["messages"] for body in chat if len(body["messages"]) > 2]
    assert follow, "no follow-up was sent"
    assistant, reason = follow[0][2], follow[0][3]
    assert assistant["role"] == "assistant" and "F.gelu(x)" in assistant["content"]
    assert reason["role"] == "user" and "identical to gelu = F.gelu(x)" in reason["content"]
    run = _run_dir(tmp_path / "a")
    meta = json.loads((run / "run.json").read_text())
    c = meta["counters"]
    assert c["follow_ups"] == len(follow) and c["calls"] == len(chat)
    assert c["follow_up_reasons"] == {"duplicate": c["follow_ups"]}
    report = (run / "report.md").read_text()
    assert f"{c['follow_ups']} follow-ups" in report
    again = _evolve(tmp_path / "b", "--budget", "3", "--replay", str(run / "llm.jsonl"), "--json")
    assert again.exit_code == 0, again.stderr

    def picks(out: str) -> list[tuple[str, float | None]]:
        return [(x["code_hash"], x["fitness"]) for x in json.loads(out)["candidates"]]

    def outcomes(r: Path) -> list[tuple[Any, ...]]:
        return [
            (e["index"], e["kind"], e["reason"], e["turns"], e["model"])
            for e in _events(r)
            if e["event"] == "outcome"
        ]

    assert picks(first.stdout) == picks(again.stdout)
    assert outcomes(_run_dir(tmp_path / "b")) == outcomes(run)


def _recorded_seeds(run: Path) -> dict[tuple[int, int], int]:
    records = [json.loads(line) for line in (run / "llm.jsonl").read_text().splitlines()]
    return {(r["index"], r["turn"]): r["sampling_seed"] for r in records}


def test_each_exchange_asks_for_a_sampling_seed_drawn_from_the_run_seed(tmp_path: Path) -> None:
    seeds, sent = [], []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        with LLMServer(_copier()) as server:
            result = _evolve(tmp_path / name, "--budget", "2", "--seed", seed, "--llm-url",
                             server.url, "--record")  # fmt: skip
            completions = [r for r in server.requests if r.path.endswith("/completions")]
        assert result.exit_code == 0, result.stderr
        seeds.append(_recorded_seeds(_run_dir(tmp_path / name)))
        sent.append(sorted(r.json["seed"] for r in completions))
        assert sent[-1] == sorted(seeds[-1].values())  # what the server got is what was recorded
        assert len(set(sent[-1])) == len(sent[-1]) and any(t for _, t in seeds[-1])  # follow-ups
    same = seeds[0].keys() & seeds[1].keys()
    assert same and all(seeds[0][k] == seeds[1][k] for k in same)
    assert not set(seeds[0].values()) & set(seeds[2].values())


def _sloppy() -> Any:
    """Writes an elementwise choice as Python's `if`, and sin without its module."""

    def respond(body: dict[str, Any], n: int) -> Reply:
        return Reply(
            f"```python\ndef activation(x):\n    if x > 0:\n        return x + 0.1 * sin({n} * x)"
            "\n    else:\n        return 0.1 * x\n```"
        )

    return _numbered(respond)


def test_a_sloppy_reply_is_repaired_logged_reported_and_replayed(tmp_path: Path) -> None:
    with LLMServer(_sloppy()) as server:
        first = _evolve(tmp_path / "a", "--budget", "3", "--llm-url", server.url, "--record",
                        "--json")  # fmt: skip
        plain = _evolve(tmp_path / "b", "--budget", "3", "--llm-url", server.url, "--no-repair",
                        "--follow-ups", "0", "--max-calls", "4")  # fmt: skip
    assert first.exit_code == 0, first.stderr
    run = _run_dir(tmp_path / "a")
    outcomes = [e for e in _events(run) if e["event"] == "outcome"]
    assert {e["kind"] for e in outcomes} == {"evaluated"}
    for e in outcomes:
        assert e["repairs"] == ["`sin(…)` → `torch.sin(…)`", "`if` on a tensor → `torch.where`"]
        assert e["score"]["status"] in ("ok", "screened")
        assert e["score"]["source"].count("torch.where(x > 0, x + 0.1 * torch.sin(") == 1
    c = json.loads((run / "run.json").read_text())["counters"]
    assert c["repaired"] == len(outcomes) == 3 and c["follow_ups"] == 0
    assert f"{c['follow_ups']} follow-ups, 3 replies repaired" in (run / "report.md").read_text()
    # As the model wrote them, the same replies are refused (bare sin is not allowed).
    assert "reached the cap of 4 calls; evaluated 0 of 3" in plain.stderr
    refused = [e for e in _events(_run_dir(tmp_path / "b")) if e["event"] == "outcome"]
    assert refused and all(e["kind"] == "rejected" and "`sin`" in e["reason"] for e in refused)
    # The record replays to the same repaired candidates; a resume may not switch repairs off.
    again = _evolve(tmp_path / "c", "--budget", "3", "--replay", str(run / "llm.jsonl"), "--json")
    assert again.exit_code == 0, again.stderr

    def picks(out: str) -> list[tuple[str, float | None]]:
        return [(x["code_hash"], x["fitness"]) for x in json.loads(out)["candidates"]]

    assert picks(again.stdout) == picks(first.stdout)
    resumed = _evolve(tmp_path / "a", "--resume", str(run), "--no-repair")
    assert resumed.exit_code != 0 and "--no-repair: the run was started with" in resumed.stderr


def _answer(body: dict[str, Any]) -> Reply:
    n = sum(len(m["content"]) for m in body["messages"]) % 97
    return Reply(
        f"```python\nimport torch\ndef activation(x):\n    return torch.tanh({n} * x)\n```"
    )


def test_an_ensemble_on_two_servers_draws_models_reproducibly(tmp_path: Path) -> None:
    seen = []
    for name in ("a", "b"):
        with (
            LLMServer(_answer, models=serving("fast")) as fast,
            LLMServer(_answer, models=serving("strong")) as strong,
        ):
            env = {"MINACT_MODEL": "fast,strong", "MINACT_MODEL_WEIGHTS": "0.75, 0.25"}
            urls = f"{fast.url},{strong.url}"
            result = _evolve(tmp_path / name, "--budget", "8", "--seed", "2", "--llm-url", urls,
                             env=env)  # fmt: skip
            asked = [
                {r.json["model"] for r in s.requests if r.path.endswith("/completions")}
                for s in (fast, strong)
            ]
        assert result.exit_code == 0, result.stderr
        assert asked == [{"fast"}, {"strong"}]
        assert "an ensemble of 2 models" in result.stderr and "(75%)" in result.stderr
        run = _run_dir(tmp_path / name)
        seen.append([e.get("model") for e in _events(run) if e["event"] == "proposal"])
        c = json.loads((run / "run.json").read_text())["counters"]
        assert sum(m["calls"] for m in c["models"].values()) == c["calls"]
        assert sum(m["new_valid"] for m in c["models"].values()) == c["evaluated"]
        report = (run / "report.md").read_text()
        assert "| model | weight | calls |" in report and "| fast |" in report
    assert seen[0] == seen[1] and set(seen[0]) == {"fast", "strong"}


def test_a_model_weighed_out_is_never_asked_and_its_server_never_checked(
    tmp_path: Path,
) -> None:
    dead = "http://127.0.0.1:9/v1"  # nothing listens: a check would end the run
    with LLMServer(_answer, models=serving("small")) as small:
        pair = ["--model", "small,off", "--model-weights", "1,0"]
        result = _evolve(tmp_path, "--budget", "3", "--llm-url", f"{small.url},{dead}", *pair)
        asked = [r.json["model"] for r in small.requests if r.path.endswith("/completions")]
    assert result.exit_code == 0, result.stderr
    flat = " ".join(result.stderr.split())
    assert "off at http://127.0.0.1:9/v1 (0%) (unchecked: weight 0: never asked" in flat
    run = _run_dir(tmp_path)
    assert {e.get("model") for e in _events(run) if e["event"] == "proposal"} == {"small"}
    assert asked and set(asked) == {"small"}
    meta = json.loads((run / "run.json").read_text())
    assert meta["llm"]["model"] == "small"
    assert [(m["name"], m["weight"]) for m in meta["models"]] == [("small", 1.0), ("off", 0.0)]


def test_the_offline_mutator_shares_a_search_with_a_model(tmp_path: Path) -> None:
    with (
        LLMServer(_answer, models=serving("small")) as small,
        LLMServer(_answer, models=serving("big")) as big,
    ):
        urls = f"{small.url},{big.url}"  # one per served model: the mutator takes none
        pair = ["--model", "small,offline,big", "--model-weights", "1,2,1"]
        result = _evolve(tmp_path, "--budget", "8", "--seed", "3", "--llm-url", urls, "--record",
                         *pair)  # fmt: skip
        asked = [
            [r.json["model"] for r in s.requests if r.path.endswith("/completions")]
            for s in (small, big)
        ]
    assert result.exit_code == 0, result.stderr
    assert "small at http" in result.stderr and "the offline mutator (50%)" in result.stderr
    run = _run_dir(tmp_path)
    drawn = [e.get("model") for e in _events(run) if e["event"] == "proposal"]
    assert set(drawn) == {"small", "offline", "big"}
    assert len(asked[0]) == drawn.count("small") and set(asked[0]) == {"small"}
    assert len(asked[1]) == drawn.count("big") and set(asked[1]) == {"big"}
    meta = json.loads((run / "run.json").read_text())
    assert [(m["name"], m["url"]) for m in meta["models"]] == [
        ("small", small.url), ("offline", ""), ("big", big.url)
    ]  # fmt: skip
    per = meta["counters"]["models"]
    mutator = {e["index"] for e in _events(run) if e.get("model") == "offline"}
    replies = [e for e in _events(run) if e["event"] == "reply" and e["index"] in mutator]
    assert per["offline"]["calls"] == len(replies) >= len(mutator)  # follow-ups included
    assert per["offline"]["seconds"] < 5
    assert per["offline"]["prompt_tokens"] == per["offline"]["completion_tokens"] == 0
    ranking = json.loads((run / "ranking.json").read_text())
    new = ranking["candidates"]
    best = min(c["fitness"] for c in new if c["origin"] != "seed" and c["status"] == "ok")
    assert min(m["best"] for m in per.values() if "best" in m) == pytest.approx(best)
    report = (run / "report.md").read_text()
    assert "| best new |" in report and "| offline |" in report
    # Replayed with the same models and weights, the proposals draw the same models (the
    # mutator's opening proposals wait for the scores again) and the run repeats itself.
    replay = _evolve(tmp_path / "replay", "--budget", "8", "--seed", "3", "--replay",
                     str(run / "llm.jsonl"), *pair)  # fmt: skip
    assert replay.exit_code == 0, replay.stderr

    def outcomes(r: Path) -> list[tuple[Any, ...]]:
        return [(e["index"], e["kind"], e["parent"], e["model"], (e["score"] or {}).get("fitness"))
                for e in _events(r) if e["event"] == "outcome"]  # fmt: skip

    assert outcomes(_run_dir(tmp_path / "replay")) == outcomes(run)


def test_the_prompt_fits_the_context_the_server_reports(tmp_path: Path) -> None:
    props = {"default_generation_settings": {"n_ctx": 2048}}
    with LLMServer(_answer, props=props) as server:
        result = _evolve(tmp_path, "--budget", "2", "--llm-url", server.url, "--max-tokens", "128")
        chat = [r.json for r in server.requests if r.path.endswith("/chat/completions")]
    assert result.exit_code == 0, result.stderr
    room = int(3.2 * (2048 - 128))
    fitted = room - 2 * FOLLOW_UP_CHARS
    assert f"cut from 8000 to {fitted} characters" in result.stderr
    assert "2048-token context" in result.stderr and "GET /props" in result.stderr
    for body in chat:  # the opening request fits, and a conversation the whole context
        size = sum(len(m["content"]) for m in body["messages"])
        assert size <= (fitted if len(body["messages"]) == 2 else room)
    meta = json.loads((_run_dir(tmp_path) / "run.json").read_text())
    assert meta["prompt"]["chars"] == fitted and meta["prompt"]["context"] == 2048


def test_the_model_list_is_asked_once_for_the_name_and_the_context(tmp_path: Path) -> None:
    listing = {"object": "list", "data": [{"id": "big", "max_model_len": 4096}]}
    with LLMServer(_answer, models=listing) as server:
        result = _evolve(tmp_path, "--budget", "1", "--llm-url", server.url)
        gets = [r.path for r in server.requests if not r.path.endswith("/completions")]
    assert result.exit_code == 0, result.stderr
    assert "4096-token context" in result.stderr and "GET /v1/models" in result.stderr
    assert gets.count("/v1/models") == 1 and gets.count("/props") == 1, gets


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--model", "a,b", "--model-weights", "0.5"], {}, "1 weights for 2 model"),
        (["--model", "a,b", "--model-weights", "1,-1"], {}, "finite and >= 0"),
        (["--model", "a,b", "--model-weights", "0,0"], {}, "all zero"),
        (["--model", "a,b", "--model-weights", "1,x"], {}, "not a number"),
        (["--model", "a,b"], {"MINACT_MODEL_WEIGHTS": "1,2,3"}, "3 weights for 2 model"),
        (["--model", "a,b,c", "--llm-url", "http://127.0.0.1:9/v1,http://127.0.0.1:8/v1"], {},
         "2 URLs for 3 models"),
        (["--model", "a,offline", "--llm-url", "http://127.0.0.1:9/v1,http://127.0.0.1:8/v1"],
         {}, "2 URLs for 1 models (--model a,offline, 'offline' taking none)"),
        (["--model", "offline"], {}, "needs a model beside it; run it alone with --offline"),
    ],
    ids=["count", "negative", "zero", "nan", "env-count", "urls", "mutator-url", "mutator-alone"],
)  # fmt: skip
def test_bad_model_weights_are_usage_errors_naming_the_flag(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    base = {"MINACT_LLM_URL": "http://127.0.0.1:9/v1", **env}
    result = _evolve(tmp_path, *args, env=base)
    assert result.exit_code == 2, result.output
    flag = "--llm-url" if "URLs" in says else "--model" if "beside" in says else "--model-weights"
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # the box wraps lines
    assert flag in flat and says in flat
    if env:  # the value came from the environment: its variable is named, not a flag alone
        assert "MINACT_MODEL_WEIGHTS (the environment's --model-weights)" in flat, flat
    assert not (tmp_path / "runs").exists()


def test_a_resume_keeps_the_follow_ups_and_the_weights(tmp_path: Path) -> None:
    with LLMServer(_answer) as server:
        first = _evolve(tmp_path, "--budget", "2", "--llm-url", server.url, "--run-id", "r")
        assert first.exit_code == 0, first.stderr
        run = str(tmp_path / "runs" / "r")
        for flag, value in (("--follow-ups", "0"), ("--model-weights", "1")):
            result = _evolve(tmp_path, "--resume", run, flag, value)
            assert result.exit_code == 1 and f"{flag} " in result.stderr, result.stderr
        again = _evolve(tmp_path, "--resume", run, "--budget", "3")
    assert again.exit_code == 0, again.stderr
    options = json.loads((tmp_path / "runs" / "r" / "run.json").read_text())["options"]
    assert options["follow_ups"] == 2 and options["budget"] == 3


def test_a_replay_given_the_context_cuts_follow_ups_as_the_recorded_run_did(
    tmp_path: Path,
) -> None:
    # A 600-token context holds the opening request but no follow-up: the copies stand.
    fit = ("--context-tokens", "600", "--max-tokens", "64")

    def respond(body: dict[str, Any], n: int) -> Reply:  # every other reply copies gelu
        code = "F.gelu(x)" if n % 2 else f"torch.sin({n} * x) + x"
        return Reply(f"```python\nimport torch\nimport torch.nn.functional as F\n"
                     f"def activation(x):\n    return {code}\n```")  # fmt: skip

    with LLMServer(_numbered(respond)) as server:
        first = _evolve(tmp_path / "a", "--budget", "2", "--llm-url", server.url, "--record", *fit)
    assert first.exit_code == 0, first.stderr
    run = _run_dir(tmp_path / "a")
    assert json.loads((run / "run.json").read_text())["counters"]["follow_ups"] == 0

    def outcomes(r: Path) -> list[tuple[Any, ...]]:
        return [(e["index"], e["kind"], e["reason"], e["turns"])
                for e in _events(r) if e["event"] == "outcome"]  # fmt: skip

    record = str(run / "llm.jsonl")
    same = _evolve(tmp_path / "b", "--budget", "2", "--replay", record, *fit)
    assert same.exit_code == 0, same.stderr
    assert "600-token context" in same.stderr
    assert outcomes(_run_dir(tmp_path / "b")) == outcomes(run)
    # Given nothing, the replay takes the context (and the rest) from the recorded run.json.
    auto = _evolve(tmp_path / "d", "--budget", "2", "--replay", record)
    assert auto.exit_code == 0, auto.stderr
    assert "recorded run's settings: --max-tokens 64, --context-tokens 600" in auto.stderr
    assert outcomes(_run_dir(tmp_path / "d")) == outcomes(run)
    # Away from its run.json, and without the flags, the replay follows the copies up,
    # asking for replies never recorded.
    (tmp_path / "alone").mkdir()
    alone = shutil.copy(record, tmp_path / "alone" / "llm.jsonl")
    loose = _evolve(tmp_path / "c", "--budget", "2", "--replay", str(alone))
    assert loose.exit_code == 0, loose.stderr
    assert outcomes(_run_dir(tmp_path / "c")) != outcomes(run)
    # A resumed replay keeps the context it was fitted to.
    resumed = _evolve(tmp_path / "b", "--resume", str(_run_dir(tmp_path / "b")),
                      "--context-tokens", "4096")  # fmt: skip
    assert resumed.exit_code == 1 and "--context-tokens 4096" in resumed.stderr


def test_follow_ups_stop_for_a_model_that_repeats_itself(tmp_path: Path) -> None:
    def respond(body: dict[str, Any], n: int) -> Reply:
        # Half the opening requests (by their sampling seed: timing plays no part) get a new
        # function; every other reply, follow-ups included, copies gelu.
        seed = body["seed"]
        code = (
            f"torch.sin({seed % 997 + 2} * x) + x"
            if len(body["messages"]) == 2 and seed % 2
            else "F.gelu(x)"
        )
        return Reply(f"```python\nimport torch\nimport torch.nn.functional as F\n"
                     f"def activation(x):\n    return {code}\n```")  # fmt: skip

    counters = {}
    with LLMServer(_numbered(respond)) as server:
        for rule in ("paying", "always"):
            flags = ("--follow-up-rule", rule) if rule == "always" else ()
            result = _evolve(tmp_path / rule, "--budget", "8", "--seed", "3", "--llm-url",
                             server.url, "--run-id", "r", "--max-calls", "200", *flags)  # fmt: skip
            assert result.exit_code == 0, result.stderr
            run = tmp_path / rule / "runs" / "r"
            meta = json.loads((run / "run.json").read_text())
            assert meta["options"]["follow_up_rule"] == rule
            counters[rule] = c = meta["counters"]
            assert c["evaluated"] == 8 and c["follow_up_new"] == 0 and c["first_new"] == 8
            report = (run / "report.md").read_text()
            first = c["calls"] - c["follow_ups"]
            assert f"new valid candidates from follow-ups 0 of {c['follow_ups']}" in report
            assert f"from first requests 8 of {first} ({8 / first:.2f} per call)" in report
        resumed = _evolve(tmp_path / "paying", "--resume", str(tmp_path / "paying" / "runs" / "r"),
                          "--follow-up-rule", "always")  # fmt: skip
    assert resumed.exit_code == 1 and "--follow-up-rule 'always'" in resumed.stderr
    assert 0 < counters["paying"]["follow_ups"] < counters["always"]["follow_ups"]
    assert counters["paying"]["calls"] < counters["always"]["calls"]
