"""Tests for minact.cli, driven as a user drives it (CliRunner, and real subprocesses)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.evaluate import NOTHING_TRAINED
from minact.seeds import SEEDS
from tests.conftest import ASSETS, TINY_TASKS, write_candidate

runner = CliRunner()


def _score(*args: str, cache: Path, tasks: Path = TINY_TASKS) -> tuple[int, str, str]:
    result = runner.invoke(app, ["score", *args, "--tasks", str(tasks), "--cache-dir", str(cache)])
    return result.exit_code, result.stdout, result.stderr


# Words the tests look for in output; a checkout (or temporary folder) may well contain them.
TELLING_WORDS = "new hit error ok relu gelu"


@pytest.fixture(params=["plain", "telling-words"])
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Returns the working folder, holding a copy of the tiny lab ("lab.toml"); in the second
    case under a path made of words the tests look for, so no test depends on the path."""
    base = tmp_path if request.param == "plain" else tmp_path / TELLING_WORDS / TELLING_WORDS
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY_TASKS, base / "lab.toml")
    monkeypatch.chdir(base)
    return base


def _rows(table: str) -> dict[str, list[str]]:
    """Returns the cells of each row of a printed ranking table, by candidate name."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")][1:-1]
        if len(cells) > 2 and cells[0].isdigit():
            rows[cells[1]] = cells
    return rows


def test_seeds_lists_every_builtin() -> None:
    result = runner.invoke(app, ["seeds"])
    assert result.exit_code == 0
    for name in SEEDS:
        assert name in result.stdout


def test_score_json_is_a_ranking_and_the_second_run_is_cached(tmp_path: Path) -> None:
    code, out, _ = _score("gelu", "gsp", "--json", cache=tmp_path / "c")
    assert code == 0, out
    doc = json.loads(out)
    assert [t["name"] for t in doc["tasks"]] == ["sine", "product"]
    cands = doc["candidates"]
    assert {c["name"] for c in cands} == {"relu", "gelu", "gsp"}
    assert [c["rank"] for c in cands] == sorted(c["rank"] for c in cands)
    fit = [c["fitness"] for c in cands]
    assert fit == sorted(fit)
    relu = next(c for c in cands if c["name"] == "relu")
    assert relu["fitness"] == 0.0 and relu["baseline"] is True
    for c in cands:
        assert set(c) >= {
            "rank",
            "name",
            "code_hash",
            "behaviour_hash",
            "source",
            "status",
            "reason",
            "fitness",
            "fitness_spread",
            "tasks",
            "baseline",
            "parent",
            "cached",
            "mean_ood_mse",
            "families",
        }
        assert set(c["tasks"]["sine"]) >= {"ood_loss", "id_loss"}
        assert c["cached"] is False
    assert doc["run"]["device"] == "cpu"
    code, out, _ = _score("gelu", "gsp", "--json", cache=tmp_path / "c")
    again = json.loads(out)
    assert all(c["cached"] for c in again["candidates"])
    # No worker started: the device says so rather than "unknown".
    assert again["run"]["device"] == NOTHING_TRAINED and again["run"]["worker"] is None
    assert [c["fitness"] for c in again["candidates"]] == fit


def test_score_files_reformatted_and_equivalent(tmp_path: Path) -> None:
    silu = write_candidate(tmp_path, "silu_file", "F.silu(x)")
    reformatted = tmp_path / "reformatted.py"
    reformatted.write_text(
        '"""SiLU, reformatted."""\nimport torch.nn.functional as fn\n\n\n'
        "def activation(x):  # a comment\n    '''doc'''\n\n    return fn.silu( x )\n"
    )
    xsig = write_candidate(tmp_path, "xsig", "x * torch.sigmoid(x)")
    code, out, err = _score(str(silu), str(reformatted), str(xsig), "--json", cache=tmp_path / "c")
    assert code == 0
    by = {c["name"]: c for c in json.loads(out)["candidates"]}
    # Identical code collapses to one entry, and says so; equal behaviour shares one evaluation.
    assert "reformatted" not in by
    assert "warning: reformatted is the same code as silu_file: scored once" in err
    assert by["silu_file"]["behaviour_hash"] == by["xsig"]["behaviour_hash"]
    assert by["silu_file"]["fitness"] == by["xsig"]["fitness"]
    assert sorted([by["silu_file"]["cached"], by["xsig"]["cached"]]) == [False, True]


def test_a_file_with_a_built_in_s_code_is_said_to_be_that_baseline(tmp_path: Path) -> None:
    # The ranking counts code equal to a built-in's as a baseline; the user's file name alone
    # would leave "the best new candidate" and "best baseline (mine)" unexplained.
    mine = write_candidate(tmp_path, "mine", "F.gelu(x) + 0.1 * torch.sin(x)")
    other = write_candidate(tmp_path, "other", "torch.tanh(x) * 0.9")
    code, out, err = _score(str(mine), str(other), "--json", cache=tmp_path / "c")
    assert code == 0, err
    by = {c["name"]: c for c in json.loads(out)["candidates"]}
    assert by["mine"]["baseline"] and not by["other"]["baseline"]
    said = "warning: mine is the same code as the built-in gelusine: ranked as a baseline"
    assert said in err
    assert "other is the same code" not in err
    # The built-in under its own name needs no word.
    code, _, err = _score("gelusine", str(other), cache=tmp_path / "c")
    assert code == 0 and "same code" not in err, err


def test_a_source_given_twice_is_scored_once_and_said_so_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_candidate(tmp_path, "f", "torch.tanh(x) * 0.9")
    (tmp_path / "bad.py").write_text("import os\ndef activation(x):\n    return x\n")
    for folder in ("a", "b"):  # two files of one name and one code
        (tmp_path / folder).mkdir()
        write_candidate(tmp_path / folder, "g", "torch.tanh(x) * 0.8")
    srcs = ["f.py", "f.py", "relu", "bad.py", "./f.py", "RELU", "bad.py", "a/g.py", "b/g.py"]
    code, out, err = _score(*srcs, "--json", cache=tmp_path / "c")
    assert code == 0, err
    names = [c["name"] for c in json.loads(out)["candidates"]]
    # One row each, the refused file too; the two g.py files by their paths (one name).
    assert sorted(names) == ["a/g.py", "bad", "f", "relu"]
    assert "warning: f.py and ./f.py name the same file, given 3 times: scored once" in err
    assert "warning: relu and RELU name the same built-in, given 2 times: scored once" in err
    assert "warning: bad.py was given 2 times: scored once" in err
    # Not "g is the same code as g": each file is called by the name it is shown by.
    assert "warning: b/g.py is the same code as a/g.py: scored once" in err
    assert "same code as f" not in err and "same code as relu" not in err


def test_hostile_files_are_results_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "escape.py").write_text(
        "import os\ndef activation(x):\n    os.system('touch pwned')\n    return x\n"
    )
    (tmp_path / "dunder.py").write_text(
        "def activation(x):\n    return x.__class__.__bases__[0].__subclasses__()\n"
    )
    (tmp_path / "binary.py").write_bytes(b"\xff\xfe\x00def activation(x): return x")
    write_candidate(tmp_path, "nan", "torch.log(x)")
    files = [str(tmp_path / f) for f in ("escape.py", "dunder.py", "binary.py", "nan.py")]
    code, out, _ = _score(*files, "--json", cache=tmp_path / "c")
    assert code == 0
    by = {c["name"]: c for c in json.loads(out)["candidates"]}
    assert by["escape"]["status"] == "invalid" and "'os'" in by["escape"]["reason"]
    assert by["dunder"]["status"] == "invalid"
    assert by["binary"]["status"] == "invalid" and "UTF-8" in by["binary"]["reason"]
    assert by["nan"]["status"] == "nonfinite" and by["nan"]["rank"] is None
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_table_output_names_status_and_cache(place: Path) -> None:
    code, out, _ = _score("gelu", cache=place / "c", tasks=place / "lab.toml")
    assert code == 0
    rows = _rows(out)
    assert set(rows) == {"gelu (baseline)", "relu (baseline)"}  # as report.md marks them
    assert all(r[-3:-1] == ["ok", "new"] for r in rows.values())
    code, out, _ = _score("gelu", cache=place / "c", tasks=place / "lab.toml")
    rows = _rows(out)
    assert set(rows) == {"gelu (baseline)", "relu (baseline)"}  # as report.md marks them
    assert all(r[-3:-1] == ["ok", "hit"] for r in rows.values())


def test_the_line_under_the_table_is_the_reports_sentence_with_the_name_escaped(
    tmp_path: Path,
) -> None:
    # A file's name is its candidate's: rich markup and an escape sequence in it reach the
    # terminal as plain text, and the sentence is the one the reports write (best *new*).
    path = write_candidate(tmp_path, "[b]x\x1b[2Jy", "torch.tanh(x) * 0.9 + 0.1 * x")
    six = ASSETS / "six_tasks.toml"  # a claim needs 6 tasks
    code, out, err = _score(str(path), cache=tmp_path / "c", tasks=six)
    assert code == 0, err
    assert "\x1b" not in out
    said = " ".join(out.split())  # the terminal may wrap it
    assert (
        "does [b]x\\x1b[2Jy, the best new candidate, beat the best baseline (relu, the only "
        "baseline scored here) beyond noise? " in said
    )
    code, out, _ = _score(str(path), "--json", cache=tmp_path / "c", tasks=six)
    claim = next(c for c in json.loads(out)["candidates"] if not c["baseline"])["claim"]
    assert f"beyond noise? {claim['verdict']} (95% CI [" in said


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchact"], "neither a .py file nor a built-in"),
        (["missing.py"], "cannot read candidate file missing.py"),
        (["gelu", "--tasks", "nope.toml"], "nope.toml: no such tasks file"),
    ],
)
def test_errors_name_what_is_wrong(place: Path, args: list[str], message: str) -> None:
    cmd = ["score", *args, "--cache-dir", str(place / "c")]
    if "--tasks" not in args:
        cmd += ["--tasks", str(place / "lab.toml")]
    result = runner.invoke(app, cmd)
    assert result.exit_code == 1
    assert message in result.stderr


def test_a_bad_tasks_file_is_exit_1_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[lab]\nsteps = -3\n[[task]]\nname = "a"\nfamily = "f"\ntarget = "x"\n')
    result = runner.invoke(app, ["score", "gelu", "--tasks", str(bad)])
    assert result.exit_code == 1
    assert "bad.toml" in result.stderr and "steps" in result.stderr and "-3" in result.stderr


TASK = '[[task]]\nname = "a"\nfamily = "f"\ntarget = "x"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[lab]\nwidht = 3\n" + TASK, ": [lab]: unknown key 'widht' = 3; known: "),
        (
            "[lab]\ntrain = [2.0, 1.0]\n" + TASK,
            ": [lab]: key 'train' must be [lo, hi] with finite lo < hi, got [2.0, 1.0]",
        ),
        (TASK + "colour = 1\n", ": [[task]] 'a' (#1): unknown key 'colour' = 1; known: "),
    ],
    ids=["lab-key", "interval", "task-key"],
)
def test_error_messages_keep_their_square_brackets(place: Path, text: str, expected: str) -> None:
    bad = place / "badkey.toml"
    bad.write_text(text)
    result = runner.invoke(app, ["score", "gelu", "--tasks", str(bad)])
    assert result.exit_code == 1
    assert f"error: {bad}{expected}" in result.stderr


def test_a_bad_flag_is_a_usage_error() -> None:
    result = runner.invoke(app, ["score", "gelu", "--device", "tpu"])
    assert result.exit_code == 2


def test_help_and_score_never_import_torch_in_the_main_process(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from minact.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    for args in (
        ["--help"],
        ["score", "relu", "--tasks", str(TINY_TASKS), "--cache-dir", str(tmp_path / "c")],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip().endswith("NO-TORCH"), proc.stderr


def test_workers_flag_gives_the_same_ranking_and_refuses_nonsense(tmp_path: Path) -> None:
    got = {}
    for workers in ("1", "2"):
        code, out, err = _score(
            "gelu", "tanh", "--workers", workers, "--threads", "1", "--json",
            cache=tmp_path / f"cache{workers}",
        )  # fmt: skip
        assert code == 0, err
        got[workers] = [(c["name"], c["fitness"]) for c in json.loads(out)["candidates"]]
    assert got["2"] == got["1"] and len(got["1"]) == 3
    code, _, err = _score("gelu", "--workers", "many", cache=tmp_path / "cache")
    assert code == 2 and "--workers" in err and "'many'" in err


def test_cache_warnings_are_summarised_not_one_line_per_entry(tmp_path: Path) -> None:
    # A damaged cache warns once per entry it cannot read; score (like evolve and rescore)
    # shows the first three and counts the rest.
    import diskcache

    cache = tmp_path / "cache"
    assert _score("relu", "gelu", "tanh", cache=cache)[0] == 0
    with diskcache.Cache(str(cache)) as raw:
        damaged = [k for k in raw.iterkeys() if str(k).startswith("res/")]
        for k in damaged:
            raw.set(k, "{not json")
    assert len(damaged) >= 5
    code, out, err = _score("relu", "gelu", "tanh", cache=cache)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if "unreadable" in ln]
    assert len(lines) == 3, err
    assert f"and {len(damaged) - 3} more cache warnings like these" in err
    assert out.count("relu") >= 1
