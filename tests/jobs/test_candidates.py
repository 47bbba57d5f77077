"""Tests for minact.jobs.candidates: `minact export` refuses what crashed or no longer validates,
and says what failed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from typer.testing import CliRunner

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.cli import app
from minact.errors import ConfigError
from minact.evaluate import EVALUATOR_VERSION
from minact.jobs.candidates import export
from minact.jobs.score import read_sources
from minact.runs.catalog import Found
from minact.runs.ranking import RankingEntry
from minact.score import Admission, Conditions, TaskResult
from minact.validate import MAX_SOURCE_CHARS, validate


def _found(source: str) -> Found:
    return Found(code_hash="ab12" * 16, source=source)


def test_the_module_says_it_was_checked(tmp_path: Path) -> None:
    gelu = seeds.seed_candidate("gelu")
    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
        cache.put_admission(gelu.code_hash, "lab", Admission("ok", behaviour_hash=Hash("b" * 64)))
    found = Found(gelu.code_hash, gelu.source)
    done = export(found, tmp_path / "g.py", "g", tmp_path / "cache")
    text = " ".join(done.target.read_text().split())
    assert done.name == "g" and done.failed is None
    assert "Checked by minact" in text and "static validation" in text
    assert "admitted it" in text and "float32" in text and "no run records its score" in text
    # Code no evaluation of which is recorded is not said to have passed one.
    text = " ".join(
        export(found, tmp_path / "u.py", "u", tmp_path / "none").target.read_text().split()
    )
    assert "No evaluation of it is recorded" in text and "admitted" not in text


def _entry(status: str, reason: str) -> RankingEntry:
    fields = {"fitness": None, "fitness_spread": None, "parent": None, "index": 3}
    return cast(RankingEntry, {**fields, "status": status, "reason": reason, "origin": "llm"})


@pytest.mark.parametrize(
    ("status", "reason", "where"),
    [
        ("too_costly", "costs 241.0x GELU in elementwise operations (limit 16x)", "cache"),
        ("nonfinite", "f is not finite at x=3.2 (float32)", "run"),
    ],
)
def test_a_failed_candidate_is_exported_with_its_real_status_and_no_claim_it_passed(
    tmp_path: Path, status: str, reason: str, where: str
) -> None:
    found = _found(seeds.seed_candidate("gelu").source)
    if where == "cache":
        with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
            cache.put_admission(Hash(found.code_hash), "lab", Admission(status, reason))  # type: ignore[arg-type]
    else:
        found = replace(found, entry=_entry(status, reason), run=tmp_path / "runs" / "r")
    done = export(found, tmp_path / "out.py", None, tmp_path / "cache")
    assert done.failed == f"{status}: {reason}"
    text = " ".join(done.target.read_text().split())
    assert f"did not pass: its recorded status is {status} ({reason})" in text
    assert "admitted" not in text and "cost within budget" not in text
    assert "finite losses" not in text and "status ok" not in text


@pytest.mark.parametrize("entry", [None, "ok"], ids=["cache only", "ok in a run"])
def test_code_whose_evaluation_crashed_is_not_exported(tmp_path: Path, entry: str | None) -> None:
    # "ok in a run": scored ok in a run, then crashed the worker in a later command (a
    # rescore on another lab): the run's entry alone would call it ok and export it.
    gelu = seeds.seed_candidate("gelu")
    found = Found("ab12" * 16, gelu.source, entry=_entry(entry, "") if entry else None)
    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
        crash = TaskResult("crashed", "training: the worker died (signal 8)")
        cache.put_transient(Hash(found.code_hash), "task", "lab", crash, Conditions(120.0, "cpu"))
    with pytest.raises(ConfigError, match=r"crashed the evaluation worker.*signal 8"):
        export(found, tmp_path / "out.py", None, tmp_path / "cache")
    assert not (tmp_path / "out.py").exists()


def test_code_that_no_longer_validates_is_not_exported(tmp_path: Path) -> None:
    source = "def activation(x):\n    return x * (x > 0)\n"  # cached before the float-only rule
    with pytest.raises(ConfigError, match=r"does not pass minact's validation.*comparison"):
        export(_found(source), tmp_path / "out.py", None, None)


def _near_the_limit() -> Candidate:
    """Returns a candidate whose function is just under MAX_SOURCE_CHARS characters."""
    line = "    c = 0.12345678901234566\n"  # as ast.unparse writes it
    n = (MAX_SOURCE_CHARS - len("def activation(x):\n    return x + c")) // len(line)
    checked = validate(f"def activation(x):\n{line * n}    return x + c\n")
    assert isinstance(checked, Candidate), checked
    assert MAX_SOURCE_CHARS - len(line) < len(checked.source) <= MAX_SOURCE_CHARS
    return checked


def test_the_export_of_a_candidate_near_the_size_limit_scores_as_that_candidate(
    tmp_path: Path,
) -> None:
    near = _near_the_limit()
    entry = _entry("ok", "")
    entry["note"] = "a note " * 40
    found = Found(near.code_hash, near.source, entry=entry, run=tmp_path / "runs" / "r")
    done = export(found, tmp_path / "near.py", None, None)
    assert len(done.target.read_text()) > MAX_SOURCE_CHARS  # its docstring and class count not
    candidates, rejected = read_sources([str(done.target)])  # what `minact score FILE` reads
    assert rejected == [] and [c.code_hash for c in candidates] == [near.code_hash]


def test_the_command_warns_that_a_failed_candidate_did_not_pass(tmp_path: Path) -> None:
    gelu = seeds.seed_candidate("gelu")
    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
        cache.put_source(gelu.code_hash, gelu.source)
        cache.put_admission(gelu.code_hash, "lab", Admission("too_costly", "costs 241.0x GELU"))
    args = ["export", gelu.code_hash[:10], "-o", str(tmp_path / "out.py")]
    args += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning: " + gelu.code_hash[:12] + " did not pass" in result.stderr
    assert "too_costly: costs 241.0x GELU" in result.stderr
    assert "recorded status is too_costly" in (tmp_path / "out.py").read_text()
