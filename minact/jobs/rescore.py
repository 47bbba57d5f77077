"""`minact rescore` as a job: score chosen candidates and the baselines on another lab.

Candidates come from a run (its K best), from hashes (found in the runs or the cache), or
from the whole cache. The result is a ranking document with each candidate's fitness on
the lab it came from beside the new one, and the rank agreement between the two over every
candidate that has both (Kendall tau and Spearman rho, with an interval over the new
lab's tasks), written with report.md and report.html (with a scatter plot of the two) to
an output folder: `RUN_DIR/rescore-<lab>/` for a run's candidates, `RUNS_DIR/rescore-<lab>/`
otherwise (`rescore-<lab>-<8 hex digits>/` when that folder holds another lab's rescore).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from minact import seeds
from minact.agreement import fitness_agreement, score_matrix
from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.claims import MEASURES
from minact.errors import ConfigError
from minact.evaluate import (
    EVALUATOR_VERSION,
    NOTHING_TRAINED,
    Evaluator,
    EvaluatorConfig,
    Progress,
)
from minact.jobs.notes import cache_notes
from minact.lab import suites
from minact.lab.files import read_regular
from minact.lab.loader import lab_with_seeds, load_lab
from minact.lab.task import Lab, sha256_json
from minact.report.html import render_ranking_html
from minact.report.markdown import render_markdown
from minact.runs.catalog import (
    all_runs,
    check_prefix,
    find,
    latest_run,
    log_warning,
    run_ranking,
)
from minact.runs.ranking import RankingDocument, ranking_document
from minact.runs.rundir import RunLog, write_atomic
from minact.validate import validate

__all__ = ["SUITES", "Rescored", "rescore"]

SUITES = tuple(suites.SUITES)  # the built-in labs and suites (minact/lab/suites.py)
_MAX_HELD = 1 << 28  # the most bytes of a rescore folder's ranking.json read (runs.index's)


@dataclass(frozen=True, slots=True)
class Rescored:
    """A rescore's ranking document, the folder its files were written to, and what went
    wrong with the cache (results it could not keep or read, as cache_notes says them)."""

    ranking: RankingDocument
    directory: Path
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Pick:
    code_hash: str
    name: str
    source: str
    fitness: float | None  # on the lab it came from, when known


def suite_path(suite: str) -> Path:
    """Returns the tasks file of a built-in suite; raises ConfigError for an unknown name or a
    missing optional dependency (with the command that installs it)."""
    if suite not in suites.SUITES:
        raise ConfigError(f"--suite {suite!r}: the built-in suites are: {', '.join(SUITES)}")
    try:
        return suites.suite_path(suite)
    except ConfigError as e:
        raise ConfigError(f"--suite {suite!r}: {e}") from None


def rescore(
    *,
    tasks: Path | None,
    suite: str | None,
    hashes: Sequence[str] = (),
    run: Path | None = None,
    top: int = 5,
    all_cached: bool = False,
    runs_dir: Path,
    cache_dir: Path,
    device: str = "auto",
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    out: Path | None = None,
    network_seeds: int | None = None,
    threads: int = 0,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Rescored:
    """Scores the chosen candidates and the 14 baselines on another lab (with
    `network_seeds` networks per task instead of the lab's, when given), telling `progress`
    how far the evaluation is and `say` how many candidates --all-cached chose; raises
    ConfigError (UsageError for a HASH that is no hash prefix)."""
    if (tasks is None) == (suite is None):
        raise ConfigError(f"give exactly one of --tasks FILE or --suite ({', '.join(SUITES)})")
    for h in hashes:  # a HASH of the wrong form is a usage error, before the cache is made
        check_prefix(h, _runs(run, runs_dir))
    lab = load_lab(tasks if tasks is not None else suite_path(str(suite)))
    written = lab  # as its file has it: --seeds changes every task's digest, not the task
    if network_seeds is not None:
        lab = lab_with_seeds(lab, network_seeds, "--seeds")
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        picks, baseline_fitness, origin, source_run, home, from_lab = _choose(
            hashes, run, top, all_cached, runs_dir, cache
        )
        original = dict(baseline_fitness)
        chosen: list[Candidate] = []
        for p in picks:
            c = validate(p.source, name=p.name or p.code_hash[:10])
            if isinstance(c, Candidate):
                chosen.append(c)
                original[c.code_hash] = p.fitness
        if not chosen and not all_cached:
            raise ConfigError(f"no candidates to rescore from {origin}")
        if source_run is not None and len(picks) < top:  # fewer than asked: said, not silent
            say(
                f"{source_run} has {len(picks)} new candidate"
                f"{'' if len(picks) == 1 else 's'} with a fitness, fewer than --top {top}: "
                "rescoring those"
            )
        if all_cached:  # every run's and lab's candidates: the user cannot know how many
            builtins = seeds.seed_candidates()
            n = len({c.code_hash for c in chosen} - {c.code_hash for c in builtins})
            say(
                f"--all-cached: rescoring the {n} candidates the cache holds (from every run "
                f"and lab) and the {len(builtins)} baselines on {lab.path} ({len(lab.tasks)} "
                "tasks); results the cache has for this lab are not trained again"
            )
        config = EvaluatorConfig(
            device=device,
            threads=threads,
            workers=workers,
            backend=backend,
            ray_address=ray_address,
        )
        with Evaluator(lab, cache, config, progress=progress) as evaluator:
            scores = evaluator.score([*seeds.seed_candidates(), *chosen])
        warnings = cache_notes(cache.warnings)
    meta = {
        "command": "rescore",
        "from": origin,
        "time": time.time(),
        "device": evaluator.info.get("device") or NOTHING_TRAINED,
        "worker": evaluator.info or None,
        **({"seeds": network_seeds} if network_seeds is not None else {}),
        # The lab "original_fitness" was measured on, so a report can name it.
        **({"from_lab": from_lab} if from_lab else {}),
    }
    extra = {
        s.code_hash: {"original_fitness": original.get(s.code_hash)} for s in scores if s.code_hash
    }
    doc = ranking_document(scores, lab, meta, extra)
    doc["agreement"] = _agreement(doc, _shared(lab, written, home))
    directory = out or _folder(source_run or runs_dir, lab.path.stem, doc)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / "ranking.json", json.dumps(doc, indent=2) + "\n")
        write_atomic(directory / "report.md", render_markdown(doc))
        write_atomic(directory / "report.html", render_ranking_html(doc))
    except OSError as e:
        # The scores are cached: the same command with --out trains nothing again.
        raise ConfigError(
            f"cannot write the rescore to {directory}: {e.strerror or e}; its scores are in the "
            "cache: give --out FOLDER to write the rescore there"
        ) from None
    return Rescored(doc, directory, warnings)


def _identity(doc: Mapping[str, Any]) -> str:
    """Returns what makes two rescores the same: their lab's settings and tasks (data,
    seeds, fitness), not the file's name or folder."""
    tasks = [(t["name"], t["digest"]) for t in doc["tasks"]]
    return sha256_json(
        {"lab": doc["lab"]["digest"], "fitness": doc["lab"]["fitness"], "tasks": tasks}
    )


def _folder(parent: Path, stem: str, doc: RankingDocument) -> Path:
    """Returns parent/rescore-<stem>, the folder a rescore on this lab replaces; when that
    folder holds something else (another lab file of the same name, other --seeds, a
    folder minact did not write), parent/rescore-<stem>-<8 digits of the lab's identity>
    instead, so that one lab's results never silently replace another's."""
    plain = parent / f"rescore-{stem}"
    if not plain.exists():
        return plain
    try:
        # A FIFO there blocked the rescore for ever, once its training was done.
        held = json.loads(read_regular(plain / "ranking.json", _MAX_HELD).decode("utf-8"))
        if _identity(held) == _identity(doc):
            return plain
    except (OSError, ValueError, RecursionError, TypeError, KeyError):  # FileRefused, Unicode...
        pass  # unreadable, or not a ranking: not ours to replace
    return parent / f"rescore-{stem}-{_identity(doc)[:8]}"


def _shared(lab: Lab, written: Lab, home: frozenset[str] | None) -> dict[str, bool] | None:
    """Returns {name: retrained} for the tasks of `lab` that are tasks of the lab the
    candidates came from (its task digests: `home`; None where not known, as for the cache
    or hashes from runs on different labs): those with one of its digests (retrained
    False), and those whose digest as their file `written` has it is one of them, trained
    here with other networks (--seeds)."""
    if home is None:
        return None
    out: dict[str, bool] = {}
    for task, as_written in zip(lab.tasks, written.tasks, strict=True):
        if task.digest() in home or as_written.digest() in home:
            out[task.name] = task.digest() not in home
    return out


def _agreement(doc: RankingDocument, shared: Mapping[str, bool] | None) -> dict[str, Any] | None:
    """Returns the rank agreement between the original and the new fitness over every scored
    candidate that has both (baselines included), or None when fewer than 3 have. The new
    ranking is by the mean of the per-task measure the new lab's fitness averages.

    `shared` maps the tasks here that are tasks of the lab the candidates came from to
    whether they were trained here with other networks (_shared; None: that lab is not
    known). They are named in `shared_tasks` (those retrained in `reseeded_tasks`), and
    `held_out` is the agreement over the other tasks alone: a shared task counts in both
    rankings with the same numbers, so it agrees by construction (largely so when retrained:
    the task decides far more than the networks' seeds)."""
    rows = [c for c in doc["candidates"] if c.get("original_fitness") is not None]
    measure = MEASURES.get(str(doc["lab"].get("fitness")), "log_ratio")
    _, tasks, matrix = score_matrix(rows, measure)  # keeps the ok rows with tasks, in order
    kept = [c for c in rows if c["status"] == "ok" and c["tasks"]]
    original = [float(c.get("original_fitness") or 0.0) for c in kept]
    agreement = fitness_agreement(original, matrix)
    if agreement is None or shared is None:
        return agreement
    names = [t["name"] for t in doc["tasks"] if t["name"] in shared]
    if names:
        other = [i for i, t in enumerate(tasks) if t not in shared]
        agreement["held_out"] = fitness_agreement(original, matrix[:, other]) if other else None
    reseeded = [t for t in names if shared[t]]
    return {**agreement, "shared_tasks": names, "reseeded_tasks": reseeded}


def _lab_key(run: Path) -> tuple[str, frozenset[str], dict[str, Any]]:
    """Returns what makes fitness from `run` one measure with another run's (its lab's
    settings, fitness kind and task digests; the run itself where run.json does not say),
    its lab's task digests (empty where not known) and its lab's path, reference and
    fitness kind (empty where not known)."""
    try:
        summary = RunLog.open(run).read_run().get("lab_summary") or {}
    except ConfigError:
        summary = {}
    lab = summary.get("lab") or {}
    digests = [str(t.get("digest")) for t in summary.get("tasks") or []]
    named = {k: lab[k] for k in ("path", "reference", "fitness") if k in lab}
    if not digests:
        return f"run {run}", frozenset(), named
    key = sha256_json({"lab": lab.get("digest"), "fitness": lab.get("fitness"), "tasks": digests})
    return key, frozenset(digests), named


def _runs(run: Path | None, runs_dir: Path) -> Iterator[Path]:
    """Yields the runs a HASH is looked for in, listing them only when asked."""
    yield from [run] if run is not None else all_runs(runs_dir)


def _choose(
    hashes: Sequence[str],
    run: Path | None,
    top: int,
    all_cached: bool,
    runs_dir: Path,
    cache: FitnessCache,
) -> tuple[
    list[_Pick],
    dict[str, float | None],
    str,
    Path | None,
    frozenset[str] | None,
    dict[str, Any] | None,
]:
    """Returns the picks, the baselines' original fitness, a description of where they came
    from, the run they came from (None for hashes or the cache), its lab's task digests
    (for hashes, those of the one lab their runs share; None for the cache, or where the
    hashes' runs are on different labs, whose fitness is then dropped: it is no one measure)
    and that lab's path, reference and fitness kind (None where there is no one lab)."""
    if hashes:
        sources = list(cache.sources())
        runs = [run] if run is not None else all_runs(runs_dir)
        said: set[str] = set()

        def once(text: str) -> None:  # each hash searches the runs again: say things once
            if text not in said:
                said.add(text)
                log_warning(text)

        picks = []
        labs: dict[str, frozenset[str]] = {}  # the labs the picks' fitness was measured on
        named: dict[str, dict[str, Any]] = {}
        for h in hashes:
            f = find(h, runs, sources, once, f"run {run}" if run is not None else "the runs")
            e = f.entry
            if e is not None and f.run is not None:
                key, digests, named[key] = _lab_key(f.run)
                labs[key] = digests
            picks.append(
                _Pick(f.code_hash, e["name"] if e else "", f.source, e["fitness"] if e else None)
            )
        if len(labs) > 1:
            # Fitness on different labs is no one measure: neither shown side by side ("was")
            # nor ranked against the fitness here.
            once(
                f"the candidates come from runs on {len(labs)} different labs (or runs whose "
                "lab is not known): their fitness there is not shown and not compared"
            )
            picks = [replace(p, fitness=None) for p in picks]
        home = next(iter(labs.values())) if len(labs) == 1 else None
        one = next(iter(named.values())) if len(named) == 1 else None
        return picks, {}, "hashes", None, home or None, one or None
    if all_cached:
        picks = [_Pick(h, "", src, None) for h, src in cache.sources()]
        return picks, {}, "cache", None, None, None
    source_run = run if run is not None else latest_run(runs_dir)
    doc, _ = run_ranking(source_run)
    best = [c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"]]
    picks = [
        _Pick(code, c["name"], c["source"], c["fitness"])
        for c in best[:top]
        if (code := c["code_hash"])
    ]
    if not picks:  # say why, rather than "no candidates" of a run that made some
        new = sum(not c["baseline"] for c in doc["candidates"])
        why = (
            f"none of its {new} new candidates has a fitness (each failed or was screened "
            "out; its report.md says why)"
            if new
            else "it has no new candidate yet, only the baselines"
        )
        raise ConfigError(f"no candidates to rescore from {source_run}: {why}")
    # The baselines' fitness on the run's lab too, so the table shows whether rankings hold.
    baselines = {
        code: c["fitness"] for c in doc["candidates"] if c["baseline"] and (code := c["code_hash"])
    }
    home = frozenset(str(t.get("digest")) for t in doc["tasks"])
    named = {k: doc["lab"][k] for k in ("path", "reference", "fitness") if k in doc["lab"]}
    return picks, baselines, str(source_run), source_run, home, named
