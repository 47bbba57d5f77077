"""`minact score` as a job: built-in names and .py files in, a ranking document out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from minact import seeds
from minact.agreement import LabAgreement, lab_agreement, score_matrix
from minact.cache import FitnessCache
from minact.candidate import Candidate, Rejection
from minact.errors import ConfigError
from minact.evaluate import (
    EVALUATOR_VERSION,
    NOTHING_TRAINED,
    Evaluator,
    EvaluatorConfig,
    Progress,
)
from minact.jobs.notes import cache_notes
from minact.lab.files import FileRefused, read_regular
from minact.lab.loader import default_tasks_path, load_lab
from minact.runs.ranking import RankingDocument, ranking_document, rejection_score
from minact.score import Score
from minact.validate import MAX_TEXT_CHARS, decode_source, validate

__all__ = ["MAX_SOURCE_BYTES", "agreement", "given_once", "read_sources", "score", "shadowed"]

# The most bytes a candidate file may hold: what decode_source accepts (4 bytes per character
# at most in UTF-8). Only this much (+ 1) is read, so a huge file or /dev/zero costs nothing.
MAX_SOURCE_BYTES = 4 * MAX_TEXT_CHARS


def read_sources(srcs: Sequence[str]) -> tuple[list[Candidate], list[Score]]:
    """Returns validated candidates and the rejections (as scores) for SRC arguments.

    A SRC that is a built-in's name (`gelu`: no folder, no `.py`) is that built-in, even
    where a file of that name is in the current folder (`./gelu` names the file; `score`
    says so). Any other SRC is a .py file (or any existing file) defining `activation`.
    A file is shown by its stem (`relu2.py`: relu2), unless that is a built-in's name or
    another SRC's: then by its file name (relu.py), or, shared too, by the path as given.
    Raises ConfigError for a file that cannot be read, is not a regular file (after
    symlinks: a FIFO, a device) or is over MAX_SOURCE_BYTES, and for a name that is neither.
    """
    candidates: list[Candidate] = []
    rejected: list[Score] = []
    names = _file_names([src for src in srcs if _builtin(src) is None])
    for src in srcs:
        path = Path(src)
        seed = _builtin(src)
        if _is_file(path, seed):
            try:
                data = read_regular(path, MAX_SOURCE_BYTES)
            except FileRefused as e:
                raise ConfigError(f"cannot read candidate file {src}: it {e}") from None
            except OSError as e:
                raise ConfigError(f"cannot read candidate file {src}: {e.strerror or e}") from None
            name, text = names[src], decode_source(data)
        elif seed is not None:
            name, text = seed.name, seeds.seed_source(seed.name)
        else:
            raise ConfigError(
                f"SRC {src!r} is neither a .py file nor a built-in ({', '.join(seeds.SEEDS)})"
            )
        result = validate(text, name=name) if isinstance(text, str) else text
        if isinstance(result, Candidate):
            candidates.append(result)
        else:
            shown = text if isinstance(text, str) else ""
            rejected.append(rejection_score(Rejection(result.reason, name=name), shown))
    return candidates, rejected


def _is_file(path: Path, seed: seeds.Seed | None) -> bool:
    """Returns whether a SRC is read as a file rather than as the built-in `seed`."""
    # A built-in's name is the built-in, whatever the current folder holds (see shadowed).
    return seed is None and (path.suffix == ".py" or path.exists())


def given_once(srcs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Returns the SRCs with each file (by its real path) and built-in kept once, first
    where given, and a line for each one given more than once (it is scored once)."""
    spelt: dict[tuple[str, str], list[str]] = {}
    for src in srcs:
        seed = _builtin(src)
        if _is_file(Path(src), seed):
            key = ("file", os.path.realpath(src))
        else:  # a built-in, or a SRC read_sources refuses
            key = ("built-in", seed.name if seed is not None else src)
        spelt.setdefault(key, []).append(src)
    said = []
    for (kind, _), given in spelt.items():
        if len(given) > 1:
            names = list(dict.fromkeys(given))
            said.append(
                f"{names[0]} was given {len(given)} times: scored once"
                if len(names) == 1
                else f"{' and '.join(names)} name the same {kind}, given {len(given)} times: "
                "scored once"
            )
    return [given[0] for given in spelt.values()], said


def _file_names(srcs: Sequence[str]) -> dict[str, str]:
    """Returns {SRC: the name it is shown by} for file SRCs: its stem, its file name or
    the path as given, the first that no built-in and no other SRC shares."""
    distinct = list(dict.fromkeys(srcs))
    out: dict[str, str] = {}
    for src in distinct:
        for name in (Path(src).stem, Path(src).name, src):
            clash = [o for o in distinct if o != src and name in (Path(o).stem, Path(o).name, o)]
            if _builtin(name) is None and not clash:
                break
        out[src] = name
    return out


def shadowed(srcs: Sequence[str]) -> list[str]:
    """Says which SRCs were taken for a built-in while a file of that name is in the
    current folder."""
    return [
        f"{src}: the built-in {src} is scored, not the file ./{src} (give ./{src} for it)"
        for src in dict.fromkeys(srcs)
        if _builtin(src) is not None and Path(src).is_file()
    ]


def _builtin(name: str) -> seeds.Seed | None:
    """Returns the built-in a SRC names (never a path: `./gelu`, `gelu.py` are files)."""
    try:
        return seeds.get_seed(name)
    except KeyError:
        return None


def score(
    srcs: Sequence[str],
    *,
    tasks: Path | None,
    cache_dir: Path,
    config: EvaluatorConfig,
    progress: Progress | None = None,
) -> tuple[RankingDocument, list[str]]:
    """Scores SRCs (and the lab's reference) on a lab; returns the ranking and cache warnings."""
    lab = load_lab(tasks if tasks is not None else default_tasks_path())
    once, repeated = given_once(srcs)
    candidates, rejected = read_sources(once)
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, config, progress=progress) as evaluator:
            scores = evaluator.score(candidates)
        warnings = repeated + shadowed(once) + _same_code(candidates) + cache_notes(cache.warnings)
    info = evaluator.info
    device = info.get("device") or NOTHING_TRAINED
    run = {"command": "score", "device": device, "worker": info or None}
    return ranking_document([*scores, *rejected], lab, run), warnings


def _same_code(candidates: Sequence[Candidate]) -> list[str]:
    """Says which SRCs normalise to the code of an earlier one: they are scored once (each
    is called by its name, which read_sources makes unique); and which files hold a
    built-in's code: the ranking counts them as that baseline, not as new candidates."""
    builtin = {c.code_hash: c.name for c in seeds.seed_candidates()}
    first: dict[str, Candidate] = {}
    said = []
    for c in candidates:
        if c.code_hash in first:
            said.append(f"{c.name} is the same code as {first[c.code_hash].name}: scored once")
            continue
        first[c.code_hash] = c
        seed = builtin.get(c.code_hash)
        if seed is not None and seed != c.name:
            # Otherwise "the best new candidate" and its claim would pass it by unexplained.
            said.append(
                f"{c.name} is the same code as the built-in {seed}: ranked as a baseline, "
                "not as a new candidate"
            )
    return said


def agreement(doc: RankingDocument) -> LabAgreement:
    """Returns how stable a ranking is under a change of its tasks (split-half, per family)."""
    key = "log_ratio" if doc["lab"]["fitness"] == "mean_log_ratio" else "ood_loss"
    _, tasks, matrix = score_matrix(doc["candidates"], key)
    family = {t["name"]: t["family"] for t in doc["tasks"]}
    return lab_agreement(matrix, [family[t] for t in tasks])
