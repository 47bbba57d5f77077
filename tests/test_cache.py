"""Tests for minact.cache: round trips, damaged entries, damaged stores, two processes at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import diskcache
import pytest

from minact.cache import FitnessCache, Stored
from minact.candidate import Hash
from minact.errors import CacheError
from minact.score import Admission, Conditions, TaskResult

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


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="cannot open the cache"):
        FitnessCache(blocker, "1")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match="not a database"):
        FitnessCache(damaged, "1")


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
    once, twice = Conditions(10.0, "cpu", 1.0, 1), Conditions(10.0, "cpu", 1.0, 2)
    assert not once.final(10.0, "cpu")  # retried once by a later call first
    assert twice.final(10.0, "cpu") and twice.final(5.0, "") and twice.final(10.0, "")
    assert not twice.final(20.0, "cpu")  # a raised timeout retries it
    assert not twice.final(10.0, "cuda")  # so does another device
    assert Conditions.from_dict(twice.to_dict()) == twice
    assert "timeout 10 s, cpu, load 1.0" == twice.describe()


def test_verdicts_are_kept_per_code_producer_and_task(cache: FitnessCache) -> None:
    other = Hash("0ther" * 12 + "0000")
    cache.put_verdict(H, B, "lab", ["t1", "t2"], False, "f(1) is 0, not 0.73")
    assert cache.get_verdict(H, B, "lab", "t1") == (False, "f(1) is 0, not 0.73")
    assert cache.get_verdict(H, B, "lab", "t2") == (False, "f(1) is 0, not 0.73")
    assert cache.get_verdict(H, B, "lab", "t3") is None  # a task whose trace was not checked
    assert cache.get_verdict(H, other, "lab", "t1") is None
    assert cache.get_verdict(H, B, "other-lab", "t1") is None
