"""`minact evolve --replay FILE --model ...` against the model list the recording was made
with: an ensemble that would draw other models for the proposals is refused, naming both
lists, before anything trains; another name for a single model is said, not refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

runner = CliRunner()
NO_LLM_ENV: dict[str, str | None] = {
    "MINACT_LLM_URL": None,
    "MINACT_MODEL": None,
    "MINACT_MODEL_WEIGHTS": None,
}
REPLY = "```python\nimport torch\ndef activation(x):\n    return torch.tanh(x) * 2\n```"


def _recording(tmp: Path, model: str, weights: str | None = None) -> Path:
    """Returns a recording beside the run.json of the run that made it with `model`."""
    run = tmp / "recorded"
    run.mkdir()
    options = {"model": model, "model_weights": weights, "budget": 1, "seed": 0}
    meta = {"run_id": "recorded", "status": "finished", "proposer": "llm", "options": options}
    (run / "run.json").write_text(json.dumps(meta))
    record = {"index": 0, "turn": 0, "reply": {"text": REPLY}}
    (run / "llm.jsonl").write_text(json.dumps(record) + "\n")
    return run / "llm.jsonl"


def _replay(tmp: Path, recording: Path, *args: str) -> Any:
    common = ["--tasks", str(TINY_TASKS), "--cache-dir", str(tmp / "cache")]
    common += ["--runs-dir", str(tmp / "runs"), "--replay", str(recording)]
    return runner.invoke(app, ["evolve", *common, *args], env=NO_LLM_ENV)


@pytest.mark.parametrize(
    ("recorded", "flags", "shown"),
    [
        (("m1,offline", None), ["--model", "offline,m1"], "'offline,m1'"),
        (("m1,offline", "3,1"), ["--model-weights", "1,1"], "'m1,offline' (weights 1,1)"),
        (("m1", None), ["--model", "m1,offline"], "'m1,offline'"),
    ],
)
def test_a_replay_that_would_draw_other_models_is_refused(
    tmp_path: Path, recorded: tuple[str, str | None], flags: list[str], shown: str
) -> None:
    recording = _recording(tmp_path, *recorded)
    result = _replay(tmp_path, recording, *flags)
    assert result.exit_code == 1, result.stderr
    said = " ".join(result.stderr.split())  # the error line may be wrapped
    assert f"--replay {recording}" in said
    assert f"recorded with --model '{recorded[0]}'" in said and shown in said
    assert not (tmp_path / "runs").exists()  # refused before a run directory


def test_a_replay_under_another_single_model_name_says_so(tmp_path: Path) -> None:
    recording = _recording(tmp_path, "m1")
    result = _replay(tmp_path, recording, "--model", "m2", "--budget", "1")
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "--model 'm2': the recording was made with --model 'm1'" in said


def test_a_recorded_run_json_with_weights_that_are_no_text_is_refused_without_a_traceback(
    tmp_path: Path,
) -> None:
    # run.json is the user's to edit: a list of weights there reached split() in the models'
    # check, an AttributeError traceback; the recorded settings' check says what is wrong.
    recording = _recording(tmp_path, "m1,offline")
    meta = json.loads((recording.parent / "run.json").read_text())
    meta["options"]["model_weights"] = [3, 1]
    (recording.parent / "run.json").write_text(json.dumps(meta))
    result = _replay(tmp_path, recording, "--model", "m1,offline", "--budget", "1")
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert "'options.model_weights' has a bad value ([3, 1]: expected a string or null" in said
    assert not (tmp_path / "runs").exists()
