"""A run whose files name a candidate with hostile text, seen through `report` and `show`.

Whoever can write a run directory chooses its names and sources. The Markdown report
keeps them on their line, as text (no heading, HTML or link of their own); the figures
draw them as they are (a `$` is not TeX); the terminal gets no control character.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact import seeds
from minact.cli import app
from minact.lab.task import Lab
from minact.runs.rundir import RunLog
from tests.report.test_report import C0, C4, SEED_FITNESS, put_curves, write_run

runner = CliRunner()

NAME = "c4 $\\frac{$\n# forged heading <img src=x onerror=alert(1)> [go](javascript:alert(2))"
ESCAPES = "\x1b[2J\x1b]0;retitled\x07"


@pytest.fixture
def hostile_run(tmp_path: Path, tiny_lab: Lab) -> Path:
    """The report tests' run, with c4 renamed, and ESC sequences in its source."""
    run = tmp_path / "runs" / "r1"
    write_run(run, tiny_lab)
    put_curves(tmp_path / "cache", [C0, C4, *(seeds.seed_candidate(n) for n in SEED_FITNESS)])
    path = run / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for e in events:
        score: dict[str, Any] | None = e.get("score")
        if score and score["name"] == "c4":
            score["name"] = NAME + ESCAPES
            score["source"] += f"\n# {ESCAPES}"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


def test_the_markdown_report_keeps_a_hostile_name_as_text(hostile_run: Path) -> None:
    cache = hostile_run.parents[1] / "cache"
    result = runner.invoke(app, ["report", str(hostile_run), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    md = (hostile_run / "report.md").read_text()
    assert "\x1b" not in md and "\x07" not in md
    assert not any(line.startswith("# forged") for line in md.splitlines())
    assert "<img" not in md and "](javascript:" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    # Every figure was drawn, the hostile name in it as it is, not as TeX.
    assert "warning" not in md
    svg = (hostile_run / "plots" / "activations.svg").read_text()
    assert "$\\frac{$" in svg


def test_show_prints_no_control_characters(hostile_run: Path) -> None:
    cache = hostile_run.parents[1] / "cache"
    args = ["show", str(C4.code_hash)[:10], "--runs-dir", str(hostile_run.parent)]
    result = runner.invoke(app, [*args, "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[2J" in result.output  # shown, escaped


# Controls, a bidi override and zero-width characters, as an LLM reply, a run's notes or a
# tasks file's path may hold them.
INVISIBLE = "\x1b[41m\x1b]0;TITLE\x07 \u202e \u200b\u200d\ufeff"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e\u200b\u200d\ufeff]")


def test_no_report_writes_a_control_bidi_or_zero_width_character(hostile_run: Path) -> None:
    meta = json.loads((hostile_run / "run.json").read_text())
    meta["message"] = f"done {INVISIBLE}"
    meta["lab_summary"]["path"] = f"/labs/{INVISIBLE}.toml"
    meta["llm"]["model"] = f"model {INVISIBLE}"
    (hostile_run / "run.json").write_text(json.dumps(meta))
    path = hostile_run / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for e in events:
        if e["event"] == "reply":
            e["reply"]["text"] = e["reply"]["text"].replace("```python\n", f"# {INVISIBLE}\n")
            e["reply"]["text"] = f"```python\n{e['reply']['text']}"
        if e["event"] == "outcome":
            e["note"] = f"note {INVISIBLE}"
            e["reason"] = f"reason {INVISIBLE}"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    cache = hostile_run.parents[1] / "cache"
    result = runner.invoke(app, ["report", str(hostile_run), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    for name in ("report.html", "report.md"):
        text = (hostile_run / name).read_text(encoding="utf-8")
        assert not UNSAFE.findall(text), name
        # Shown, escaped, in code blocks too: the source's comment and the reply's.
        assert "\\x1b]0;retitled\\x07" in text and "\\u202e" in text and "\\u200b" in text


def test_the_report_of_a_live_run_says_what_it_does_not_know_yet(
    tmp_path: Path, tiny_lab: Lab
) -> None:
    run = tmp_path / "runs" / "r1"
    write_run(run, tiny_lab)
    meta = json.loads((run / "run.json").read_text())
    meta["status"], meta["message"] = "running", ""
    for key in ("proposer", "llm", "seconds", "device", "worker"):
        del meta[key]  # recorded as the run ends
    (run / "run.json").write_text(json.dumps(meta))
    with RunLog(run).held():  # a process still runs it
        result = runner.invoke(app, ["report", str(run), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    md = (run / "report.md").read_text()
    assert "None" not in md and "wall time 0 s" not in md
    assert "status: **running**\n" in md and "wall time running;" in md
    assert "proposer: not yet recorded (running)" in md
    html = (run / "report.html").read_text()
    assert "None" not in html and "<th>wall time</th><td>running</td>" in html
