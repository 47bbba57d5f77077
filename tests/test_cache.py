"""Tests for minact.cache: round trips, damaged entries, damaged stores, two processes at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import diskcache
import pytest
from typer.testing import CliRunner

from minact import seeds
from minact.cache import ADMISSION_REVISION, FitnessCache, Stored
from minact.candidate import Hash
from minact.cli import app
from minact.errors import CacheError
from minact.evaluate import EVALUATOR_VERSION
from minact.lab.loader import load_lab
from minact.score import MAX_ATTEMPTS, Admission, Conditions, TaskResult, failed_again
from tests.conftest import TINY_TASKS

H = Hash("c0de" * 16)
B = Hash("beef" * 16)


def test_round_trip(cache: FitnessCache) -> None:
    adm = Admission("ok", "", B, 2.0)
    res = TaskResult("ok", "", (0.5, 0.25), (0.01, 0.02), 1.5)
    cache.put_admission(H, "lab", adm)
    cache.put_result(B, "task", "lab", res, H)
    cache.put_source(H, "def activation(x):\n    return x")
    assert cache.get_admission(H, "lab") == adm
    assert cache.get_result(B, "task", "lab") == Stored(res, H)
    assert cache.get_source(H) == "def activation(x):\n    return x"


def test_keys_separate_labs_tasks_and_versions(tmp_path: Path) -> None:
    with FitnessCache(tmp_path / "c", "1") as one:
        one.put_result(B, "task", "lab", TaskResult("ok", "", (1.0,), (1.0,)), H)
        assert one.get_result(B, "other-task", "lab") is None
        assert one.get_result(B, "task", "other-lab") is None
    with FitnessCache(tmp_path / "c", "2") as two:
        assert two.get_result(B, "task", "lab") is None


def test_failures_are_cached_with_their_reason(cache: FitnessCache) -> None:
    cache.put_admission(H, "lab", Admission("not_pointwise", "changing one input changes others"))
    cache.put_result(B, "t", "lab", TaskResult("nonfinite", "OOD test loss is nan for seed 0"), H)
    adm = cache.get_admission(H, "lab")
    assert adm is not None and adm.status == "not_pointwise" and "changes others" in adm.reason
    res = cache.get_result(B, "t", "lab")
    assert res is not None and res.result.status == "nonfinite" and res.producer == H


@pytest.mark.parametrize(
    "raw",
    [
        "not json at all",
        "[1, 2, 3]",
        '{"status": "ok", "ood": [1.0], "id": []}',  # an ok result needs a loss per seed
        '{"status": "bogus_kind"}',
        '{"status": "ok", "ood": ["a"], "id": [1.0]}',
        '{"status": "ok", "ood": [NaN], "id": [1.0]}',
        b"\x80\x04\x95 binary",
    ],
)
def test_a_corrupt_entry_is_a_miss(tmp_path: Path, raw: object) -> None:
    with FitnessCache(tmp_path / "c", "1") as cache:
        key = f"res/1/lab/task/{B}"
        with diskcache.Cache(str(tmp_path / "c")) as raw_cache:
            raw_cache.set(key, raw)
        assert cache.get_result(B, "task", "lab") is None
        assert cache.warnings and "unreadable" in cache.warnings[0]
        # A fresh result replaces the damaged one.
        cache.put_result(B, "task", "lab", TaskResult("ok", "", (1.0,), (2.0,)), H)
        assert cache.get_result(B, "task", "lab") is not None


def test_a_foreign_pickle_is_a_miss(tmp_path: Path) -> None:
    with FitnessCache(tmp_path / "c", "1") as cache:
        with diskcache.Cache(str(tmp_path / "c")) as raw_cache:
            raw_cache.set(f"adm/1/lab/{H}", {"status": "ok"})  # stored by pickle, not JSON
        # minact writes JSON text only; a pickled value came from elsewhere and is ignored.
        assert cache.get_admission(H, "lab") is None


def _leave_mark(path: str, padding: str = "") -> None:
    """What a hostile pickle calls when it is loaded (it could name any callable)."""
    Path(path).write_text("loaded")


class _Hostile:
    """A value whose pickle calls _leave_mark when loaded; `size` pads it (diskcache keeps
    a pickle of 32 kB or more in a file of its own rather than in SQLite)."""

    def __init__(self, marker: Path, size: int = 0) -> None:
        self.marker, self.size = marker, size

    def __reduce__(self) -> tuple[Any, ...]:
        return (_leave_mark, (str(self.marker), "x" * self.size))


@pytest.mark.parametrize("size", [0, 40_000], ids=["in-sqlite", "in-a-file"])
def test_a_hostile_pickle_is_never_loaded(tmp_path: Path, size: int) -> None:
    marker = tmp_path / "loaded"
    hostile = _Hostile(marker, size)
    keys = [f"src/{B}", f"res/1/lab/task/{B}", f"adm/1/lab/{B}", f"trn/1/lab/task/{B}"]
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        for key in [*keys, "meta/salt"]:
            raw.set(key, hostile)
        raw.set((f"adm/1/lab/{B}", hostile), "a pickled key, listed by iterkeys")
    with FitnessCache(tmp_path / "c", "1") as cache:
        cache.put_source(H, "def activation(x):\n    return x")
        assert cache.get_source(B) is None
        assert cache.get_result(B, "task", "lab") is None
        assert cache.get_admission(B, "lab") is None
        assert cache.get_transient(B, "task", "lab") is None
        assert list(cache.sources()) == [(H, "def activation(x):\n    return x")]
        assert cache.crashes(B) == []
        assert 0 <= cache.seed("probe:lab") < 2**63  # a salt for this command only
        assert "the cache's salt is unreadable; using one for this command" in cache.warnings
        for key in keys:
            assert any(key in w and "a pickle" in w for w in cache.warnings), key
        cache.put_source(B, "def activation(x):\n    return -x")  # a fresh entry replaces it
        assert cache.get_source(B) == "def activation(x):\n    return -x"
        with pytest.raises(TypeError, match="never a pickle"):  # nor does minact write one
            cache._cache.set("meta/other", {"a": 1})
    assert not marker.exists()


def test_entries_written_before_read_back_large_ones_from_files_too(tmp_path: Path) -> None:
    # Large text is kept in a file by diskcache (32 kB and more), both ways.
    big = "def activation(x):\n    return x\n" + "# a long comment\n" * 4000
    res = TaskResult("ok", "", (0.5,), (0.1,), 1.0, trace=(0.25, -3.5))
    entries = {
        f"src/{H}": {"source": "def activation(x):\n    return x"},
        f"src/{B}": {"source": big},
        f"res/1/lab/task/{B}": {**res.to_dict(), "producer": H},
        f"adm/1/lab/{H}": Admission("ok", "", B, 2.0).to_dict(),
    }
    with diskcache.Cache(str(tmp_path / "c")) as raw:  # as minact wrote entries before
        for key, value in entries.items():
            raw.set(key, json.dumps(value, sort_keys=True))
        raw.set("meta/salt", "5a" * 32)
    with FitnessCache(tmp_path / "c", "1") as cache:
        assert cache.get_source(B) == big
        assert dict(cache.sources()) == {H: entries[f"src/{H}"]["source"], B: big}
        # Numbers that do not say which torch computed them are not served, quietly.
        assert cache.get_result(B, "task", "lab") is None
        assert cache.get_admission(H, "lab") is None
        cache.seed("probe:lab")
        assert cache.warnings == []
        cache.put_source(Hash("f" * 64), big)
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        stored = json.loads(raw.get("src/" + "f" * 64))
        assert stored["source"] == big and stored["key"] == "src/" + "f" * 64
        assert raw.get("meta/salt") == "5a" * 32
    assert len(list((tmp_path / "c").rglob("*.val"))) == 2  # both large sources in files


def _name_file(cache_dir: Path, key: str, filename: str, expired: bool = False) -> None:
    """Edits the row of `key` to keep its value in `filename` (as diskcache does for large
    values), as someone editing cache.db could; `expired` rows are dropped on the next write."""
    with sqlite3.connect(cache_dir / "cache.db") as db:
        db.execute(
            "UPDATE Cache SET mode = 3, filename = ?, value = NULL, expire_time = ? WHERE key = ?",
            (filename, 1.0 if expired else None, key),
        )


@pytest.mark.parametrize("where", ["absolute", "relative", "a link"])
def test_a_file_outside_the_cache_is_never_read_nor_deleted(tmp_path: Path, where: str) -> None:
    # A row naming a file elsewhere: diskcache would read it for a get, and delete it (and
    # its folder, once empty) when the entry is replaced or expires.
    victim = tmp_path / "home" / "thesis.tex"
    victim.parent.mkdir()
    victim.write_text(json.dumps({"source": "def activation(x):\n    return -x"}))
    cache_dir = tmp_path / "c"
    own = "ab/cd/" + "e" * 28 + ".val"  # a name diskcache could have made
    name = {"absolute": str(victim), "relative": "../home/thesis.tex", "a link": own}[where]
    with FitnessCache(cache_dir, "1") as cache:
        cache.put_source(B, "def activation(x):\n    return x")
        cache.put_source(H, "def activation(x):\n    return x")
    if where == "a link":
        (cache_dir / "ab" / "cd").mkdir(parents=True)
        (cache_dir / own).symlink_to(victim)
    _name_file(cache_dir, f"src/{B}", name)
    _name_file(cache_dir, f"src/{H}", name, expired=True)
    with FitnessCache(cache_dir, "1") as cache:
        assert cache.get_source(B) is None
        assert cache.warnings and "not the cache's own" in cache.warnings[0]
        cache.put_source(B, "def activation(x):\n    return x")  # replaces the row
        cache.put_result(B, "task", "lab", TaskResult("ok", "", (1.0,), (2.0,)), H)
        assert cache.get_source(B) == "def activation(x):\n    return x"
    assert victim.exists()


@pytest.mark.parametrize(
    "entry",
    [
        {"status": "ok", "behaviour_hash": B, "cost": float("nan")},
        {"status": "ok", "behaviour_hash": B, "cost": -2.0},
        {"status": "ok", "behaviour_hash": B, "cost": float("inf")},
        {"status": "too_costly", "cost": float("nan")},
        {"status": "ok", "behaviour_hash": None, "cost": 1.0},
    ],
    ids=["nan", "negative", "infinite", "nan-failure", "no-behaviour"],
)
def test_an_admission_with_an_impossible_cost_is_a_miss(
    tmp_path: Path, entry: dict[str, Any]
) -> None:
    # Served, `minact score` printed the edited cost as the candidate's own.
    with FitnessCache(tmp_path / "c", "1") as cache:
        cache.put_admission(H, "lab", Admission("ok", "", B, 2.0))
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        stored = json.loads(raw.get(f"adm/1/lab/{H}"))
        raw.set(f"adm/1/lab/{H}", json.dumps({**stored, **entry}))
    with FitnessCache(tmp_path / "c", "1") as cache:
        assert cache.get_admission(H, "lab") is None
        assert cache.warnings and "unreadable (ValueError" in cache.warnings[0]


def test_an_entry_under_another_key_is_a_miss(tmp_path: Path) -> None:
    # A cache edited by hand: relu's result on one task copied over its result on another,
    # an admission copied to other code. Served, they were numbers of other work.
    res = TaskResult("ok", "", (0.5,), (0.1,), 1.0)
    with FitnessCache(tmp_path / "c", "1") as cache:
        cache.put_result(B, "task", "lab", res, H)
        cache.put_admission(H, "lab", Admission("too_costly", "costs 40x GELU"))
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        raw.set(f"res/1/lab/other-task/{B}", raw.get(f"res/1/lab/task/{B}"))
        raw.set(f"adm/1/lab/{B}", raw.get(f"adm/1/lab/{H}"))
        raw.set(f"src/{B}", raw.get(f"res/1/lab/task/{B}"))
    with FitnessCache(tmp_path / "c", "1") as cache:
        assert cache.get_result(B, "task", "lab") == Stored(res, H)
        assert cache.get_result(B, "other-task", "lab") is None
        assert cache.get_admission(B, "lab") is None
        assert cache.get_source(B) is None
        assert len(cache.warnings) == 3
        assert all("another key" in w for w in cache.warnings)


def test_results_of_another_torch_are_a_miss(tmp_path: Path) -> None:
    res = TaskResult("ok", "", (0.5,), (0.1,), 1.0)
    with FitnessCache(tmp_path / "c", "1", torch="2.4.0") as old:
        assert old.torch == "2.4.0"
        old.put_result(B, "task", "lab", res, H)
        old.put_admission(H, "lab", Admission("ok", "", B, 2.0))
        old.put_source(H, "def activation(x):\n    return x")
    with FitnessCache(tmp_path / "c", "1", torch="2.9.0") as new:
        assert new.get_result(B, "task", "lab") is None
        assert new.get_admission(H, "lab") is None
        assert new.get_source(H) == "def activation(x):\n    return x"  # code is code
        assert new.warnings == []
    with FitnessCache(tmp_path / "c", "1") as installed:  # the installed torch by default
        assert installed.torch not in ("", "2.4.0")


def test_admissions_of_an_older_revision_are_a_miss(tmp_path: Path) -> None:
    # An admission written before the flat note: served, `torch.sign` would read "ok" with
    # no note against an old cache and "ok: flat: ..." against a new one.
    with FitnessCache(tmp_path / "c", "1") as cache:
        cache.put_admission(H, "lab", Admission("ok", "", B, 2.0))
        assert cache.get_admission(H, "lab") == Admission("ok", "", B, 2.0)
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        entry = json.loads(raw.get(f"adm/1/lab/{H}"))
        assert entry.pop("revision") == ADMISSION_REVISION
        raw.set(f"adm/1/lab/{H}", json.dumps(entry))  # as the revision before wrote it
    with FitnessCache(tmp_path / "c", "1") as cache:
        assert cache.get_admission(H, "lab") is None
        assert cache.warnings == []


def test_commands_run_on_a_cache_holding_hostile_pickles(tmp_path: Path) -> None:
    marker, cache_dir = tmp_path / "loaded", tmp_path / "cache"
    relu = seeds.seed_candidate("relu")
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        cache.put_source(H, "def activation(x):\n    return x")
    with diskcache.Cache(str(cache_dir)) as raw:
        raw.set(f"src/{B}", _Hostile(marker))
        raw.set("meta/salt", _Hostile(marker))
        lab = load_lab(TINY_TASKS)
        raw.set(f"adm/{EVALUATOR_VERSION}/{lab.digest()}/{relu.code_hash}", _Hostile(marker))
        raw.set(("src/", _Hostile(marker)), "a pickled key")
    runner = CliRunner()
    where = ["--cache-dir", str(cache_dir)]
    result = runner.invoke(app, ["show", B[:8], *where, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "no candidate's hash starts with" in result.stderr
    result = runner.invoke(app, ["show", H[:8], *where, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.stderr
    assert "return x" in result.stdout
    result = runner.invoke(
        app,
        ["score", "relu", "--json", "--tasks", str(TINY_TASKS), *where, "--workers", "1"],
    )
    assert result.exit_code == 0, result.stderr
    (scored,) = json.loads(result.stdout)["candidates"]
    assert scored["status"] == "ok" and scored["code_hash"] == relu.code_hash
    assert not marker.exists()


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="cannot open the cache"):
        FitnessCache(blocker, "1")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match=r"cache\.db is not an SQLite database"):
        FitnessCache(damaged, "1")
    # SQLite says only "unable to open database file" of a folder where the database goes.
    folder = tmp_path / "folder"
    (folder / "cache.db").mkdir(parents=True)
    with pytest.raises(CacheError, match=r"cache\.db is a folder, not the cache's database"):
        FitnessCache(folder, "1")


_WRITER = """
import sys
from pathlib import Path
from minact.cache import FitnessCache
from minact.candidate import Hash
from minact.score import TaskResult
who, directory = sys.argv[1], Path(sys.argv[2])
with FitnessCache(directory, "1") as cache:
    for i in range(150):
        result = TaskResult("ok", "", (float(i),), (0.0,))
        cache.put_result(Hash(f"{who}{i}"), "task", "lab", result, Hash(who))
        cache.get_result(Hash(f"{'b' if who == 'a' else 'a'}{i}"), "task", "lab")
"""


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, who, str(directory)]) for who in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with FitnessCache(directory, "1") as cache:
        for who in "ab":
            for i in range(150):
                r = cache.get_result(Hash(f"{who}{i}"), "task", "lab")
                assert r is not None and r.result.ood == (float(i),)
        assert cache.warnings == []


def test_the_salt_is_made_once_kept_secret_and_shared(tmp_path: Path) -> None:
    with FitnessCache(tmp_path / "c", "1") as one:
        seed = one.seed("probe:lab")
        assert seed == one.seed("probe:lab") != one.seed("probe:other-lab")
        assert 0 <= seed < 2**63
    with FitnessCache(tmp_path / "c", "2") as again:  # another version, the same directory
        assert again.seed("probe:lab") == seed
    with FitnessCache(tmp_path / "d", "1") as other:
        assert other.seed("probe:lab") != seed
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        salt = raw.get("meta/salt")
    assert isinstance(salt, str) and len(salt) == 64
    assert str(seed) not in salt and salt not in str(seed)


def test_results_record_their_producer_and_trace(cache: FitnessCache) -> None:
    res = TaskResult("ok", "", (0.5,), (0.1,), 1.0, trace=(0.25, -3.5))
    cache.put_result(B, "task", "lab", res, H)
    stored = cache.get_result(B, "task", "lab")
    assert stored is not None and stored.producer == H and stored.result.trace == (0.25, -3.5)


def test_transient_failures_belong_to_the_code_with_their_conditions(cache: FitnessCache) -> None:
    crash = TaskResult("crashed", "the worker died")
    cond = Conditions(120.0, "cpu", 3.5, 1)
    cache.put_transient(H, "task", "lab", crash, cond)
    assert cache.get_transient(H, "task", "lab") == (crash, cond)
    assert cache.get_result(H, "task", "lab") is None  # never a shared result
    assert cache.crashes(H) == ["the worker died"]
    cache.drop_transient(H, "task", "lab")
    assert cache.get_transient(H, "task", "lab") is None and cache.crashes(H) == []
    timeout = Admission("timeout", "probing the activation: no reply")
    cache.put_admission(H, "lab", timeout, Conditions(5.0, "cpu", None, 2))
    assert cache.get_admission(H, "lab") == timeout
    assert cache.get_admission_conditions(H, "lab") == Conditions(5.0, "cpu", None, 2)


def test_conditions_decide_when_a_transient_failure_is_final() -> None:
    once, twice = Conditions(10.0, "cpu", 1.0, 1, 1), Conditions(10.0, "cpu", 1.0, 2, 2)
    assert not once.final(10.0, "cpu")  # retried once by a later call first
    assert twice.final(10.0, "cpu") and twice.final(5.0, "") and twice.final(10.0, "")
    assert not twice.final(20.0, "cpu")  # a raised timeout retries it
    assert not twice.final(10.0, "cuda")  # so does another device
    assert Conditions.from_dict(twice.to_dict()) == twice
    assert "timeout 10 s, cpu, load 1.0" == twice.describe()


def test_a_failure_on_a_busy_machine_or_from_outside_is_no_verdict() -> None:
    def calls(*causes: tuple[float | None, bool]) -> Conditions:
        cond = None
        for load, outside in causes:
            cond = failed_again(cond, 10.0, "cpu", load, 2, outside)
        assert cond is not None
        return cond

    calm, busy, killed = (1.0, False), (3.5, False), (1.0, True)  # 2 cores: busy above 3.0
    assert calls(busy, calm).final(10.0, "cpu")  # it failed on a calm machine too
    assert calls(calm, busy).final(10.0, "cpu")
    assert calls((None, False), (None, False)).final(10.0, "cpu")  # no load known: calm
    # A load spike, or a worker killed from outside, in both calls: retried...
    assert not calls(busy, busy).final(10.0, "cpu")
    assert not calls(killed, killed).final(10.0, "cpu")
    assert not calls(killed, busy, busy).final(10.0, "cpu")
    # ...until it has failed in MAX_ATTEMPTS calls: a machine always busy stops paying for it.
    assert calls(*[busy] * MAX_ATTEMPTS).final(10.0, "cpu")
    assert calls(busy, busy).clean == 0 and calls(calm, killed, calm).clean == 2
    assert Conditions.from_dict({"timeout": 10.0}) == Conditions(10.0, "", None, 1, 0)


def test_verdicts_are_kept_per_code_producer_and_task(cache: FitnessCache) -> None:
    other = Hash("0ther" * 12 + "0000")
    cache.put_verdict(H, B, "lab", ["t1", "t2"], False, "f(1) is 0, not 0.73")
    assert cache.get_verdict(H, B, "lab", "t1") == (False, "f(1) is 0, not 0.73")
    assert cache.get_verdict(H, B, "lab", "t2") == (False, "f(1) is 0, not 0.73")
    assert cache.get_verdict(H, B, "lab", "t3") is None  # a task whose trace was not checked
    assert cache.get_verdict(H, other, "lab", "t1") is None
    assert cache.get_verdict(H, B, "other-lab", "t1") is None
