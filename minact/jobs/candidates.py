"""`minact show` and `minact export` as jobs: find one candidate, write it out as a module."""

from __future__ import annotations

from pathlib import Path

from minact.cache import FitnessCache
from minact.candidate import Hash, Rejection
from minact.errors import ConfigError
from minact.evaluate import EVALUATOR_VERSION
from minact.export import NAME_RULE, module_text, valid_name
from minact.runs.catalog import Found, all_runs, find
from minact.validate import validate

__all__ = ["export", "find_candidate"]


def find_candidate(prefix: str, runs_dir: Path, run: Path | None, cache_dir: Path) -> Found:
    """Returns the candidate whose code hash starts with `prefix`, in the runs or the cache."""
    runs = [run] if run is not None else all_runs(runs_dir)
    if not cache_dir.exists():
        return find(prefix, runs)
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        return find(prefix, runs, list(cache.sources()))


def export(
    found: Found,
    output: Path | None,
    name: str | None,
    cache_dir: Path | None = None,
    *,
    force: bool = False,
) -> tuple[Path, str]:
    """Writes `found` as a standalone module; returns the file and the function's name.

    An existing file (a lab file, a run's run.json, ...) is replaced only with `force`.

    Refuses code that no longer passes static validation, and code whose last evaluation
    crashed (in the run, or as recorded in the cache at `cache_dir`): a module that kills
    the process importing it is not a result.
    """
    fname = name or f"act_{found.code_hash[:8]}"
    if not valid_name(fname):
        raise ConfigError(f"--name {fname!r}: the name must be {NAME_RULE}")
    checked = validate(found.source)
    if isinstance(checked, Rejection):
        raise ConfigError(
            f"{found.code_hash[:12]} does not pass minact's validation ({checked.reason}); "
            "it is not exported"
        )
    crashes = _crashes(found, cache_dir)
    if crashes:
        raise ConfigError(
            f"{found.code_hash[:12]} crashed the evaluation worker when last evaluated "
            f"({crashes[0]}); code that crashes is not exported"
        )
    target = output or Path(f"{fname}.py")
    text = module_text(found.source, fname, _docstring(found, fname))
    try:
        # "x" creates the file or fails if it is there, in one step: no race with a check.
        with target.open("w" if force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise ConfigError(f"{target} exists; --force replaces it") from None
    except OSError as e:
        raise ConfigError(f"cannot write {target}: {e.strerror or e}") from None
    return target, fname


def _crashes(found: Found, cache_dir: Path | None) -> list[str]:
    """Returns why `found` crashed when last evaluated (its run entry, then the cache)."""
    if found.entry is not None and found.entry["status"] == "crashed":
        return [found.entry["reason"]]
    if cache_dir is None or not cache_dir.exists():
        return []
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        return cache.crashes(Hash(found.code_hash))


def _docstring(found: Found, name: str) -> str:
    e = found.entry
    lines = [f"{name}: an activation function found by minact.", ""]
    if e is not None and e["fitness"] is not None:
        # With one network per task there is no spread over seeds: none is claimed.
        spread = e["fitness_spread"]
        lines.append(
            f"Fitness {e['fitness']:+.4f}"
            + (f" ± {spread:.4f} (sd over seeds)" if spread is not None else "")
            + " (mean log OOD-MSE ratio to the reference; lower is better, 0 = reference)"
        )
    if e is not None and found.run is not None:
        note = e.get("note")
        lines.append(
            f"Origin: run {found.run}, proposal {e.get('index')} ({e.get('origin')}"
            + (f": {note}" if note else "")
            + ")"
        )
        if e["parent"]:
            lines.append(f"Parent: {e['parent']}")
    lines.append(f"Code hash: {found.code_hash}")
    status = e["status"] if e is not None else None
    evaluated = (
        "it trained to finite losses on the lab (status ok)"
        if status == "ok"
        else f"its recorded status is {status}"
        if status is not None
        else "no run records its score"
    )
    lines += [
        "",
        "Checked by minact: at export, the source passed static validation (allow-listed",
        "elementwise torch/math code computing in floating point: no integer division,",
        "rounding modes, integer tensors or big Python integers), and no crash of it is",
        "recorded. When evaluated, minact ran it only in a separate worker process, which",
        "admitted it (shape and dtype kept, pointwise, f and f' finite in float64 and float32",
        "at fixed, secretly salted and random inputs of the probe range, cost within budget);",
        f"{evaluated}.",
    ]
    return "\n".join(lines)
