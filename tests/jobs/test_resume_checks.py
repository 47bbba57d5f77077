"""`evolve --resume` on run directories a user edited, driven through the CLI.

run.json's settings go through the same range checks as the CLI's flags; a budget below
what the run already evaluated is refused; events of the wrong shape are skipped and
counted, once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from minact.cli import app
from minact.jobs.options import EvolveOptions
from minact.runs.rundir import RunLog
from minact.search import server
from tests.conftest import TINY_TASKS

runner = CliRunner()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished offline run (2 candidates on the tiny lab); each test copies it."""
    base = tmp_path_factory.mktemp("resume")
    args = ["evolve", "--offline", "--budget", "2", "--tasks", str(TINY_TASKS)]
    args += ["--cache-dir", str(base / "cache"), "--runs-dir", str(base / "runs")]
    result = runner.invoke(app, [*args, "--run-id", "r", "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    return {"run": base / "runs" / "r", "cache": base / "cache"}


def _copy(finished: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished["run"], tmp_path / "runs" / "r"))


def _resume(finished: dict[str, Path], run: Path, *args: str) -> Any:
    cache = ["--cache-dir", str(finished["cache"])]
    return runner.invoke(app, ["evolve", "--resume", str(run), *cache, *args])


def _run_json(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "run.json").read_text())
    return data


def _option(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["options"].__setitem__(key, value)


BAD_RUN_JSON: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "islands_0": (_option("islands", 0), "key 'options.islands' has a bad value (0: "),
    # A list per island: 10**30 of them would take the machine's memory.
    "islands_huge": (_option("islands", 10**30), "key 'options.islands' has a bad value (1000"),
    "temperature_inf": (_option("temperature", 1e999), "key 'options.temperature' has a bad"),
    "max_tokens_huge": (_option("max_tokens", 10**30), "key 'options.max_tokens' has a bad"),
    "context_huge": (_option("context_tokens", 10**30), "key 'options.context_tokens' has a"),
    "max_calls_huge": (_option("max_calls", 10**30), "key 'options.max_calls' has a bad va"),
    "tasks_5": (_option("tasks", 5), "key 'options.tasks' has a bad value (5: "),
    "concurrency_0": (_option("concurrency", 0), "key 'options.concurrency' has a bad value"),
    "seed_string": (_option("seed", "1"), "key 'options.seed' has a bad value ('1': "),
    "device": (_option("device", "tpu"), "key 'options.device' has a bad value ('tpu': "),
    "offline_1": (_option("offline", 1), "key 'options.offline' has a bad value (1: "),
    "options_list": (lambda d: d.__setitem__("options", [1]), "key 'options' has a bad value"),
    "seconds": (lambda d: d.__setitem__("seconds", "x"), "key 'seconds' has a bad value"),
    "counters": (lambda d: d.__setitem__("counters", "x"), "key 'counters' has a bad value"),
    "summary": (
        lambda d: d.__setitem__("lab_summary", {"lab": 5, "tasks": 7}),
        "key 'lab_summary.lab' has a bad value (5: ",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUN_JSON))
def test_a_resume_names_a_bad_value_in_run_json(
    finished: dict[str, Path], tmp_path: Path, case: str
) -> None:
    run = _copy(finished, tmp_path)
    edit, message = BAD_RUN_JSON[case]
    data = _run_json(run)
    edit(data)
    (run / "run.json").write_text(json.dumps(data))
    before = (run / "events.jsonl").read_text()
    result = _resume(finished, run, "--budget", "3")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {run / 'run.json'}: {message}"), result.stderr
    assert "Traceback" not in result.output
    assert (run / "events.jsonl").read_text() == before  # nothing ran


SECRET = "s3cr3t-pw"


@pytest.mark.parametrize("offline", [False, True], ids=["llm", "offline"])
@pytest.mark.parametrize(
    "url", [f"http://user:{SECRET}@127.0.0.1:9/v1", f"http://{SECRET}@127.0.0.1:9/v1"]
)
def test_a_resume_refuses_credentials_an_older_run_json_kept_without_showing_them(
    finished: dict[str, Path], tmp_path: Path, url: str, offline: bool
) -> None:
    # An older minact wrote the URL as given; --llm-url now refuses it, and so does a resume
    # (one with a model used to print it in "cannot reach the LLM server: GET <url>").
    run = _copy(finished, tmp_path)
    data = _run_json(run)
    data["options"].update(llm_url=url, model="m", offline=offline)
    (run / "run.json").write_text(json.dumps(data))
    before = (run / "events.jsonl").read_text()
    result = _resume(finished, run, "--budget", "3")
    assert result.exit_code == 1, result.output
    assert SECRET not in result.output
    flat = " ".join(result.stderr.split())
    assert flat.startswith(f"error: {run / 'run.json'}: key 'options.llm_url' is a URL with a ")
    assert "minact keeps no credentials in run.json" in flat and "--llm-url URL" in flat
    assert (run / "events.jsonl").read_text() == before  # nothing ran
    if offline:  # another address replaces it, and the secret leaves run.json
        result = _resume(finished, run, "--budget", "3", "--llm-url", "http://127.0.0.1:9/v1")
        assert result.exit_code == 0, result.output
        assert not [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.mark.parametrize("key", ["seed", "tasks"])
def test_a_setting_missing_from_run_json_options_is_the_one_the_run_kept_at_top_level(
    finished: dict[str, Path], tmp_path: Path, key: str
) -> None:
    # run.json keeps seed, tasks, budget, concurrency and islands at top level too: a key
    # edited out of "options" is not replaced by its default (seed 0, ./tasks.toml, ...).
    run = _copy(finished, tmp_path)
    data = _run_json(run)
    kept = data["options"].pop(key)
    assert data[key] == kept
    (run / "run.json").write_text(json.dumps(data))
    result = _resume(finished, run, "--budget", "3")
    assert result.exit_code == 0, result.output
    after = _run_json(run)
    assert after[key] == kept and after["options"][key] == kept


def test_a_resume_whose_tasks_file_is_gone_asks_for_a_copy_with_tasks(tmp_path: Path) -> None:
    tasks = tmp_path / "lab.toml"
    shutil.copy(TINY_TASKS, tasks)
    args = ["evolve", "--offline", "--budget", "1", "--tasks", str(tasks), "--run-id", "r"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    assert runner.invoke(app, args).exit_code == 0
    run = tmp_path / "runs" / "r"
    tasks.unlink()
    finished = {"run": run, "cache": tmp_path / "cache"}
    result = _resume(finished, run, "--budget", "2")
    assert result.exit_code == 1, result.output
    assert " ".join(result.stderr.split()) == (
        f"error: {tasks}: the tasks file the run started with is gone; give the same tasks "
        "with --tasks (a copy of the file, or the built-in lab's name) to resume it"
    )
    copy = tmp_path / "copy.toml"
    shutil.copy(TINY_TASKS, copy)
    result = _resume(finished, run, "--budget", "2", "--tasks", str(copy))
    assert result.exit_code == 0, result.output
    # A file given with --tasks that is not there is said as such.
    result = _resume(finished, run, "--budget", "2", "--tasks", str(tasks))
    assert result.exit_code == 1 and "no such tasks file" in result.stderr, result.stderr


def test_a_resume_refuses_a_call_cap_below_the_calls_the_run_made(
    finished: dict[str, Path], tmp_path: Path
) -> None:
    # The cap counts the log's calls: below them, the replay stopped part-way and run.json
    # said "evaluated 1 of 4" of a run that had evaluated more.
    run = _copy(finished, tmp_path)
    made = _run_json(run)["counters"]["calls"]
    evaluated = _run_json(run)["counters"]["evaluated"]
    assert made >= 2
    before = (run / "events.jsonl").read_text()
    result = _resume(finished, run, "--budget", "4", "--max-calls", "1")
    assert result.exit_code == 1, result.output
    assert " ".join(result.stderr.split()) == (
        f"error: --max-calls 1: the run already made {made} calls, and the cap counts them; "
        f"give --max-calls {made} or more to continue it"
    )
    assert (run / "events.jsonl").read_text() == before  # nothing ran
    result = _resume(finished, run, "--budget", "4", "--max-calls", str(made))
    assert "Traceback" not in result.output
    said = _run_json(run)["message"]
    assert said.startswith(f"reached the cap of {made} calls; evaluated {evaluated} of 4"), said


def test_a_bad_value_the_flags_replace_does_not_stop_a_resume(
    finished: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    data = _run_json(run)
    data["options"]["threads"] = -1  # a setting a resume may change: the flag replaces it
    (run / "run.json").write_text(json.dumps(data))
    result = _resume(finished, run, "--budget", "2", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert _run_json(run)["options"]["threads"] == 1


def test_a_resume_refuses_a_budget_below_what_the_run_evaluated(
    finished: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    before = _run_json(run)
    assert before["counters"]["evaluated"] == 2
    result = _resume(finished, run, "--budget", "1")
    assert result.exit_code == 1, result.output
    assert "--budget 1" in result.stderr and "already evaluated 2 candidates" in result.stderr
    assert "--budget 2 or more" in result.stderr
    assert _run_json(run) == before  # run.json still says what the log holds
    # The same budget stored in run.json (edited by hand) names its key.
    data = dict(before, options={**before["options"], "budget": 1})
    (run / "run.json").write_text(json.dumps(data))
    result = _resume(finished, run)
    assert result.exit_code == 1, result.output
    assert f"{run / 'run.json'}: key 'options.budget' has a bad value (1: " in result.stderr


def test_a_resume_refuses_a_budget_in_run_json_past_the_flag_s_bound(
    finished: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    data = _run_json(run)
    data["options"]["budget"] = 10**30  # a run that could never finish
    (run / "run.json").write_text(json.dumps(data))
    result = _resume(finished, run)
    assert result.exit_code == 1, result.output
    said = f"error: {run / 'run.json'}: key 'options.budget' has a bad value (1000"
    assert result.stderr.startswith(said), result.stderr
    assert "in 1..1000000, as for --budget" in " ".join(result.stderr.split())
    # The flag replaces it: the run continues to the budget given.
    result = _resume(finished, run, "--budget", "2")
    assert result.exit_code == 0, result.output
    assert _run_json(run)["options"]["budget"] == 2


def test_a_resume_skips_events_of_the_wrong_shape_and_says_so_once(
    finished: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    path = run / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    next(e for e in events if e["event"] == "proposal")["cut"] = [1]
    next(e for e in events if e["event"] == "reply")["reply"]["latency"] = "x"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = _resume(finished, run, "--budget", "3")
    assert result.exit_code == 0, result.output
    warning = f"warning: {path}: skipped 2 events of the wrong shape"
    assert result.stderr.count(warning) == 1, result.stderr
    assert "evaluated 3 candidates" in result.stderr
    assert _run_json(run)["counters"]["evaluated"] == 3


def test_the_limits_of_run_json_settings_are_the_flags_limits() -> None:
    from minact.cli._shared import MAX_WORKERS
    from minact.jobs.options import CHOICES, LIMITS

    command = typer.main.get_command(app)
    evolve = command.commands["evolve"]  # type: ignore[attr-defined]
    flags = {p.name: p for p in evolve.params}
    settings = {f for f in EvolveOptions.__dataclass_fields__}
    auto = {"max_calls", "workers"}  # 0 stands for "auto" in the settings, not on the CLI
    for name, (lo, hi) in LIMITS.items():
        assert name in settings
        if name == "workers":  # a string on the CLI: N or auto
            assert hi == MAX_WORKERS
            continue
        flag = flags[name]
        assert (flag.min, flag.max) == ((1 if name in auto else lo), hi), name
    numbers = {
        n for n, f in EvolveOptions.__dataclass_fields__.items() if f.type in ("int", "float")
    }
    assert numbers == set(LIMITS)
    # A context a server reports is believed up to what --context-tokens takes.
    assert LIMITS["context_tokens"][1] == server.MAX_CONTEXT
    assert set(CHOICES) == {"device", "compile", "backend", "follow_up_rule"}
    for name, words in CHOICES.items():
        flag = flags["compile_" if name == "compile" else name]
        enum = flag.type_descriptor.annotation  # type: ignore[attr-defined]
        assert [c.value for c in enum] == list(words), name


def test_a_run_another_process_holds_is_not_resumed(
    finished: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    before = (run / "events.jsonl").read_text()
    with RunLog.open(run).held():  # the process still running it
        result = _resume(finished, run, "--budget", "3")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {run}: the run is in use by another minact process")
    assert (run / "events.jsonl").read_text() == before
    again = _resume(finished, run, "--budget", "3")
    assert again.exit_code == 0, again.output


def test_a_run_on_files_of_the_current_folder_resumes_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # README: --tasks defaults to ./tasks.toml, and a resume restores every setting, and
    # keeps --validate. The run keeps where those files are, so a resume run elsewhere (no
    # tasks.toml there, or another one) still finds the files the run started with.
    start, elsewhere = tmp_path / "lab", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    shutil.copy(TINY_TASKS, start / "tasks.toml")
    shutil.copy(TINY_TASKS, start / "held.toml")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    monkeypatch.chdir(start)
    args = ["evolve", "--offline", "--budget", "1", "--run-id", "r", *cache]
    first = runner.invoke(app, [*args, "--validate", "held.toml", "--validate-top", "1"])
    assert first.exit_code == 0, first.output
    run = start / "runs" / "r"
    data = _run_json(run)
    kept = {"tasks": data["tasks"], **{k: data["options"][k] for k in ("tasks", "validate")}}
    assert all(Path(p).is_absolute() for p in kept.values()), kept
    assert Path(kept["validate"]).resolve() == (start / "held.toml").resolve()
    assert Path(kept["tasks"]).resolve() == (start / "tasks.toml").resolve()
    # The same file by another path is the same setting, not another --validate.
    again = ["evolve", "--resume", str(run), "--budget", "2", "--validate", "./held.toml"]
    assert (result := runner.invoke(app, [*again, *cache])).exit_code == 0, result.output
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["evolve", "--resume", str(run), "--budget", "3", *cache])
    assert result.exit_code == 0, result.output
    assert _run_json(run)["counters"]["evaluated"] == 3
