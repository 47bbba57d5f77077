"""Files that cannot be read or written, seen from the command line: each failure is one
`error:` line naming the path and the reason, and exit code 1, never a traceback."""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact import seeds
from minact.cli import app
from minact.errors import ConfigError
from minact.lab.loader import load_lab
from minact.runs.rundir import RunLog, write_atomic
from tests.conftest import TINY_TASKS, write_candidate
from tests.report.test_report import C0, C4, SEED_FITNESS, put_curves, write_run

runner = CliRunner()
NO_FILE = "it is not a regular file (a directory)"  # the log is read only from a regular file


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run whose curves are all in the cache: `report` starts no worker."""
    d = tmp_path / "runs" / "r1"
    write_run(d, load_lab(TINY_TASKS))
    put_curves(tmp_path / "cache", [C0, C4, *(seeds.seed_candidate(n) for n in SEED_FITNESS)])
    return d


def _report(run_dir: Path) -> Any:
    return runner.invoke(
        app, ["report", str(run_dir), "--cache-dir", str(run_dir.parents[1] / "cache")]
    )


def _one_error_line(result: Any) -> str:
    """Returns the only line of stderr, after checking that the command failed cleanly."""
    assert result.exit_code == 1, (result.exception, result.stderr)
    assert isinstance(result.exception, SystemExit)  # not an exception escaping the command
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_report_where_plots_is_a_file(run_dir: Path) -> None:
    (run_dir / "plots").write_text("not a folder")
    line = _one_error_line(_report(run_dir))
    assert line.startswith(f"error: {run_dir / 'plots'} is a file, not a folder; ")


def test_report_where_events_jsonl_is_a_folder(run_dir: Path) -> None:
    (run_dir / "events.jsonl").unlink()
    (run_dir / "events.jsonl").mkdir()
    line = _one_error_line(_report(run_dir))
    assert line == f"error: cannot read {run_dir / 'events.jsonl'}: {NO_FILE}"


def test_resume_where_events_jsonl_is_a_folder(run_dir: Path) -> None:
    (run_dir / "events.jsonl").unlink()
    (run_dir / "events.jsonl").mkdir()
    cache = run_dir.parents[1] / "cache"
    result = runner.invoke(app, ["evolve", "--resume", str(run_dir), "--cache-dir", str(cache)])
    line = _one_error_line(result)
    assert line == f"error: cannot read {run_dir / 'events.jsonl'}: {NO_FILE}"


def test_report_where_report_md_is_a_folder(run_dir: Path) -> None:
    (run_dir / "report.md").mkdir()
    line = _one_error_line(_report(run_dir))
    assert line == f"error: cannot write {run_dir / 'report.md'}: Is a directory"
    assert not list(run_dir.glob(".*.tmp"))  # no temporary file left behind


def test_report_leaves_a_link_planted_in_the_run_alone(run_dir: Path, tmp_path: Path) -> None:
    # Whoever can write the run folder may plant links where the report's temporary files
    # used to go; writing the report must not write through them to another file.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("ranking.json", "report.md", "report.html"):
        (run_dir / f".{name}.tmp").symlink_to(victim)
    result = _report(run_dir)
    assert result.exit_code == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert (run_dir / "report.md").read_text().startswith("# minact run")


def test_report_in_a_read_only_run_directory(run_dir: Path) -> None:
    (run_dir / "plots").mkdir()
    for d in (run_dir, run_dir / "plots"):
        d.chmod(0o555)
    try:
        try:
            (run_dir / "probe").write_text("")
        except PermissionError:
            pass
        else:
            pytest.skip("chmod does not stop this user from writing (root)")
        line = _one_error_line(_report(run_dir))
        path = run_dir / "plots" / "activations.svg"
        assert line == f"error: cannot write {path}: Permission denied"
    finally:
        for d in (run_dir, run_dir / "plots"):
            d.chmod(0o755)


def test_the_run_log_names_the_file_it_cannot_use(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.events_path.mkdir()
    with pytest.raises(ConfigError, match=r"cannot write .*events.jsonl: Is a directory"):
        log.append({"event": "start"})
    with pytest.raises(ConfigError, match=r"cannot read .*events.jsonl: it is not a regular file"):
        list(log.events())
    (tmp_path / "run.json").mkdir()
    with pytest.raises(ConfigError, match=r"cannot write .*run.json: Is a directory"):
        log.write_run({"status": "running"})
    with pytest.raises(ConfigError, match=r"cannot write .*missing.json: No such file"):
        write_atomic(tmp_path / "gone" / "missing.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "run.json"]


def test_score_where_the_worker_folder_is_a_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "worker").write_text("x\n")
    src = write_candidate(tmp_path, "new", "torch.tanh(x) + 0.1 * x")
    result = runner.invoke(
        app,
        [
            "score",
            str(src),
            "--tasks",
            str(TINY_TASKS),
            "--cache-dir",
            str(cache),
            "--workers",
            "1",
        ],
    )
    line = _one_error_line(result)
    assert line.startswith(f"error: cannot create the worker's folder {cache / 'worker'}: ")
    assert "a file is in the way" in line


def _small_files() -> None:
    """In the child: no file may grow past 16 KiB (`ulimit -f`), and a write past it fails
    rather than kill the process, as a full disk refuses what no longer fits."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file size limits")
@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["score", "relu"], "cannot open the cache at {cache}: {why};"),
        (
            ["evolve", "--offline", "--budget", "1"],
            "--cache-dir {cache}: cannot write there ({why})",
        ),
    ],
)
def test_a_cache_that_cannot_grow_is_said_in_the_operating_systems_words(
    tmp_path: Path, command: list[str], said: str
) -> None:
    # SQLite says "disk I/O error" (or "unable to open database file", on a read-only disk),
    # which hides what is wrong and reads as a damaged cache.
    cache = tmp_path / "cache"
    args = [*command, "--tasks", str(TINY_TASKS), "--cache-dir", str(cache)]
    args += ["--runs-dir", str(tmp_path / "runs")] if command[0] == "evolve" else []
    proc = subprocess.run(
        [sys.executable, "-m", "minact", *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_small_files,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    expected = "error: " + said.format(cache=cache, why=os.strerror(errno.EFBIG))
    assert proc.stderr.startswith(expected), proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["seeds"], ["suites"]])
def test_output_to_a_full_device(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "minact", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert (proc.returncode, proc.stderr) == (
        1,
        "error: No space left on device: standard output\n",
    )


@pytest.mark.parametrize("command", ["seeds", "show"])
def test_output_in_an_encoding_without_the_tables_characters(command: str, run_dir: Path) -> None:
    # ±, — and ← cannot be written in ASCII (PYTHONIOENCODING=ascii, or LANG=C without UTF-8
    # mode): they are replaced, and the command still does its job.
    args = [command]
    if command == "show":
        args += [str(C0.code_hash)[:10], "--runs-dir", str(run_dir.parent)]
        args += ["--cache-dir", str(run_dir.parents[1] / "cache")]
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run(
        [sys.executable, "-m", "minact", *args],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode("ascii", "replace")
    assert b"Traceback" not in proc.stderr
    assert (b"relu" if command == "seeds" else b"c0") in proc.stdout


def _damaged_cache(tmp_path: Path) -> Path:
    """Returns a cache folder whose database is no SQLite file: it cannot be opened."""
    cache = tmp_path / "damaged-cache"
    cache.mkdir()
    (cache / "cache.db").write_bytes(b"not a database\n" * 512)
    return cache


def test_show_reads_a_runs_candidate_when_the_cache_cannot_be_opened(
    run_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The run records the candidate: a damaged (or read-only) cache must not hide it.
    cache = _damaged_cache(tmp_path)
    args = ["show", C0.code_hash[:10], "--run", str(run_dir), "--cache-dir", str(cache)]
    with caplog.at_level(logging.WARNING, logger="minact"):  # printed on stderr as it is
        result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.exception, result.stderr)
    assert C0.code_hash in result.stdout and "def activation(x):" in result.stdout
    (said,) = caplog.messages
    assert said.startswith(f"warning: the cache was not searched for '{C0.code_hash[:10]}': ")
    assert f"cannot open the cache at {cache}" in said


def test_a_prefix_no_run_holds_names_the_cache_that_cannot_be_opened(
    run_dir: Path, tmp_path: Path
) -> None:
    cache = _damaged_cache(tmp_path)
    result = runner.invoke(
        app, ["show", "ffffffff", "--run", str(run_dir), "--cache-dir", str(cache)]
    )
    line = _one_error_line(result)
    assert "no candidate's hash starts with 'ffffffff'" in line
    assert f"the cache was not searched: cannot open the cache at {cache}" in line


def test_export_writes_a_runs_candidate_when_the_cache_cannot_be_opened(
    run_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As `show` does: the run records the candidate and its verdict; a damaged cache only
    # means that a crash recorded by a later command cannot be seen, which is said.
    cache, out = _damaged_cache(tmp_path), tmp_path / "act.py"
    args = ["export", C0.code_hash[:10], "--run", str(run_dir), "--cache-dir", str(cache)]
    with caplog.at_level(logging.WARNING, logger="minact"):
        result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, (result.exception, result.stderr)
    assert "def act_" in out.read_text()
    said = [m for m in caplog.messages if "was not read" in m]
    assert len(said) == 1 and f"cannot open the cache at {cache}" in said[0]


def test_export_of_a_candidate_only_the_cache_knows_names_the_damaged_cache(
    run_dir: Path, tmp_path: Path
) -> None:
    cache = _damaged_cache(tmp_path)
    result = runner.invoke(
        app, ["export", "ffffffff", "--run", str(run_dir), "--cache-dir", str(cache)]
    )
    assert f"cannot open the cache at {cache}" in _one_error_line(result)
