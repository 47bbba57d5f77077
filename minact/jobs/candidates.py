"""`minact show` and `minact export` as jobs: find one candidate, write it out as a module."""

from __future__ import annotations

from pathlib import Path

from minact.cache import FitnessCache
from minact.errors import ConfigError
from minact.evaluate import EVALUATOR_VERSION
from minact.export import module_text, valid_name
from minact.runs.catalog import Found, all_runs, find

__all__ = ["export", "find_candidate"]


def find_candidate(prefix: str, runs_dir: Path, run: Path | None, cache_dir: Path) -> Found:
    """Returns the candidate whose code hash starts with `prefix`, in the runs or the cache."""
    runs = [run] if run is not None else all_runs(runs_dir)
    if not cache_dir.exists():
        return find(prefix, runs)
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        return find(prefix, runs, list(cache.sources()))


def export(found: Found, output: Path | None, name: str | None) -> tuple[Path, str]:
    """Writes `found` as a standalone module; returns the file and the function's name."""
    fname = name or f"act_{found.code_hash[:8]}"
    if not valid_name(fname):
        raise ConfigError(f"--name {fname!r} is not a usable Python name")
    target = output or Path(f"{fname}.py")
    text = module_text(found.source, fname, _docstring(found, fname))
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {target}: {e.strerror or e}") from None
    return target, fname


def _docstring(found: Found, name: str) -> str:
    e = found.entry
    lines = [f"{name}: an activation function found by minact.", ""]
    if e is not None and e["fitness"] is not None:
        lines.append(
            f"Fitness {e['fitness']:+.4f} ± {e['fitness_spread'] or 0:.4f} "
            "(mean log OOD-MSE ratio to the reference; lower is better, 0 = reference)"
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
    return "\n".join(lines)
