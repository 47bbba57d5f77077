"""Tests for minact.reuse through the Evaluator: sound sharing of results between codes.

Each poisoning pair of issue 9 runs on one cache, poisoner first, honest victim second:
the victim must get exactly the fitness it gets on a fresh cache, and the poisoner must be
refused or trained under its own key. Then: equal functions still train once, a collision
trains under the code's own key, and timeouts and crashes are the code's own and retried.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from minact.cache import FitnessCache
from minact.candidate import Candidate, Rejection
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.task import Lab
from minact.score import BUSY_LOAD, MAX_ATTEMPTS, Score
from minact.validate import code_hash, validate

# On the CPU wherever it runs: a cached failure's device is then known without a worker.
CONFIG = EvaluatorConfig(threads=1, device="cpu")
U = "u = (x + 10 - 0.0014142135623730952) * 2047 / 20"  # integer on the probe grid

# name: (poisoner lines, victim return expression)
PAIRS = {
    "float32-flag-silu": (("return F.silu(x) * ((x * 0 + 1e8 + 1) - 1e8)",), "F.silu(x)"),
    "grid-bumps-softplus": (
        (U, "return F.softplus(x) + 0.3 * torch.sin(math.pi * u) ** 2"),
        "F.softplus(x)",
    ),
    "tanh-beyond-ten": (
        ("return torch.where(torch.abs(x) > 10, 0.5 * torch.tanh(x), torch.tanh(x))",),
        "torch.tanh(x)",
    ),
    "nan-between-grid-points-mish": (
        (U, "return F.mish(x) + 0 * torch.sqrt(0.01 - torch.sin(math.pi * u) ** 2)"),
        "F.mish(x)",
    ),
}
# Crashes the worker (SIGFPE) wherever x is not within a quarter step of a grid point.
CRASH = (
    "def activation(x):\n"
    f"    {U}\n"
    "    m = torch.where(torch.abs(u - torch.round(u)) > 0.25, -9223372036854775807 - 1, 0)\n"
    "    return F.gelu(x) + torch.div(m, -1, rounding_mode='trunc') * 0\n"
)


def _cand(lines: tuple[str, ...] | str, name: str) -> Candidate:
    body = (lines,) if isinstance(lines, str) else lines
    if len(body) == 1 and not body[0].startswith("return"):
        body = (f"return {body[0]}",)
    c = validate("def activation(x):\n" + "".join(f"    {b}\n" for b in body), name=name)
    assert isinstance(c, Candidate), c
    return c


def _machine_load(monkeypatch: pytest.MonkeyPatch, load: float) -> None:
    """Makes the evaluator see `load` as the machine's load average: whether a failure is
    a verdict depends on it, and a test must not depend on the machine's real load."""
    monkeypatch.setattr("minact.reuse.load_average", lambda: load)


def _score(lab: Lab, cache: FitnessCache, *cands: Candidate) -> dict[str, Score]:
    with Evaluator(lab, cache, CONFIG) as ev:
        return {s.name: s for s in ev.score(list(cands))}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Score]:
    """Each victim (and gelu) scored on a fresh cache: the numbers they must keep."""
    from minact.lab.loader import load_lab

    from .conftest import TINY_TASKS

    victims = [_cand(v, f"victim-{k}") for k, (_, v) in PAIRS.items()]
    with FitnessCache(tmp_path_factory.mktemp("fresh"), EVALUATOR_VERSION) as cache:
        return _score(load_lab(TINY_TASKS), cache, *victims, _cand("F.gelu(x)", "gelu"))


@pytest.mark.slow
@pytest.mark.parametrize("pair", list(PAIRS))
def test_a_poisoner_first_does_not_change_the_victims_score(
    pair: str, tiny_lab: Lab, cache: FitnessCache, fresh: dict[str, Score]
) -> None:
    poison_lines, victim_body = PAIRS[pair]
    poisoner, victim = _cand(poison_lines, "poisoner"), _cand(victim_body, f"victim-{pair}")
    first = _score(tiny_lab, cache, poisoner)["poisoner"]
    second = _score(tiny_lab, cache, victim)[victim.name]
    honest = fresh[victim.name]
    assert second.ok and second.fitness == honest.fitness and second.tasks == honest.tasks
    assert second.collision is None and not second.cached  # trained by its own code
    # The poisoner is refused, or trained under its own key.
    assert not first.ok or first.behaviour_hash != second.behaviour_hash
    assert first.ok or first.fitness is None


def test_the_crash_payload_is_refused_statically() -> None:
    refused = validate(CRASH)
    assert isinstance(refused, Rejection)
    assert "integer" in refused.reason or "rounding_mode" in refused.reason


@pytest.mark.slow
def test_a_crash_between_grid_points_is_never_ranked_ok(
    tiny_lab: Lab, cache: FitnessCache, fresh: dict[str, Score], monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine_load(monkeypatch, 0.0)
    # As if validation had missed it: the worker's random and salted points run it.
    payload = Candidate(CRASH, code_hash(CRASH), name="payload")
    out = _score(tiny_lab, cache, payload)
    assert out["payload"].status == "crashed" and out["payload"].fitness is None
    assert "a later call retries it)" in out["payload"].reason
    victim = _score(tiny_lab, cache, _cand("F.gelu(x)", "gelu"))["gelu"]
    assert victim.fitness == fresh["gelu"].fitness
    again = _score(tiny_lab, cache, payload)["payload"]  # retried once, then final
    assert again.status == "crashed" and "final after a retry" in again.reason
    with Evaluator(tiny_lab, cache, CONFIG) as ev:
        assert ev.score([payload])[1].status == "crashed"
        assert ev.info == {}, "a final crash is answered from the cache"


def test_equal_functions_train_once_and_are_verified(tiny_lab: Lab, cache: FitnessCache) -> None:
    silu, xsig, xdiv = (
        _cand(b, n)
        for b, n in (
            ("F.silu(x)", "silu"),
            ("x * torch.sigmoid(x)", "xsig"),
            ("x / (1 + torch.exp(-x))", "xdiv"),
        )
    )
    out = _score(tiny_lab, cache, silu, xsig)
    assert out["silu"].behaviour_hash == out["xsig"].behaviour_hash
    assert [out["silu"].cached, out["xsig"].cached] == [False, True]
    assert out["xsig"].fitness == out["silu"].fitness and out["xsig"].collision is None
    for task in tiny_lab.tasks:
        verdict = cache.get_verdict(
            xsig.code_hash, silu.code_hash, tiny_lab.digest(), task.digest()
        )
        assert verdict == (True, "")
    later = _score(tiny_lab, cache, xdiv)["xdiv"]  # a later call: verified, not trained
    assert later.cached and later.fitness == out["silu"].fitness and later.seconds == 0.0


def test_a_collision_trains_under_the_codes_own_key(
    tiny_lab: Lab, cache: FitnessCache, tmp_path: Path
) -> None:
    silu, xsig, tanh = (
        _cand(b, n)
        for b, n in (
            ("F.silu(x)", "silu"),
            ("x * torch.sigmoid(x)", "xsig"),
            ("torch.tanh(x)", "t"),
        )
    )
    behaviour = _score(tiny_lab, cache, silu)["silu"].behaviour_hash
    assert behaviour is not None
    # Make the shared entries look as if tanh had trained them: xsig must not reproduce them.
    lab = tiny_lab.digest()
    cache.put_source(tanh.code_hash, tanh.source)
    for task in tiny_lab.tasks:
        stored = cache.get_result(behaviour, task.digest(), lab)
        assert stored is not None and stored.producer == silu.code_hash
        cache.put_result(behaviour, task.digest(), lab, stored.result, tanh.code_hash)
    got = _score(tiny_lab, cache, xsig)["xsig"]
    assert got.ok and got.collision == behaviour and "differs" not in got.reason
    assert got.behaviour_hash == xsig.code_hash and not got.cached
    with FitnessCache(tmp_path / "fresh", EVALUATOR_VERSION) as other:
        assert got.fitness == _score(tiny_lab, other, xsig)["xsig"].fitness
    verdict = cache.get_verdict(xsig.code_hash, tanh.code_hash, lab, tiny_lab.tasks[0].digest())
    assert verdict is not None and not verdict[0] and "not" in verdict[1]
    for task in tiny_lab.tasks:  # the shared entry is untouched; xsig's own is its own
        shared = cache.get_result(behaviour, task.digest(), lab)
        own = cache.get_result(xsig.code_hash, task.digest(), lab)
        assert shared is not None and shared.producer == tanh.code_hash
        assert own is not None and own.producer == xsig.code_hash
    again = _score(tiny_lab, cache, xsig)["xsig"]  # a later call finds its own results
    assert again.cached and again.collision == behaviour and again.fitness == got.fitness


def _longer(lab: Lab, steps: int) -> Lab:
    tasks = tuple(
        dataclasses.replace(t, settings=dataclasses.replace(t.settings, steps=steps))
        for t in lab.tasks
    )
    return dataclasses.replace(lab, tasks=tasks)


@pytest.mark.slow
def test_a_timeout_is_the_codes_own_and_retried_until_the_timeout_rises(
    tiny_lab: Lab, cache: FitnessCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine_load(monkeypatch, 0.0)
    slow = _longer(tiny_lab, 600)
    silu, xsig = _cand("F.silu(x)", "silu"), _cand("x * torch.sigmoid(x)", "xsig")
    _score(slow, cache)  # the reference, with the generous timeout
    hasty = dataclasses.replace(slow, timeout=0.05)
    first = _score(hasty, cache, silu)["silu"]
    assert first.status == "timeout" and "a later call retries it)" in first.reason
    assert first.behaviour_hash is not None
    for task in slow.tasks:  # nothing shared under the behaviour hash
        assert cache.get_result(first.behaviour_hash, task.digest(), slow.digest()) is None
    second = _score(hasty, cache, silu)["silu"]
    assert second.status == "timeout" and "final after a retry" in second.reason
    with Evaluator(hasty, cache, CONFIG) as ev:
        assert {s.name: s for s in ev.score([silu])}["silu"].status == "timeout"
        assert ev.info == {}, "a final timeout is answered from the cache"
    # Other code of the same behaviour is not served the timeout, and a raised timeout
    # retries the code that timed out.
    later = _score(slow, cache, xsig, silu)
    assert later["xsig"].ok and later["silu"].ok
    assert later["xsig"].fitness == later["silu"].fitness


@pytest.mark.slow
def test_a_timeout_on_a_busy_machine_is_retried_until_it_recurs_often(
    tiny_lab: Lab, cache: FitnessCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every call sees a load average of 1000: a spike, each time, that may explain the
    # timeout. It is no verdict until the code has failed in MAX_ATTEMPTS calls.
    _machine_load(monkeypatch, 1000.0)
    silu = _cand("F.silu(x)", "silu")
    _score(_longer(tiny_lab, 600), cache)  # the reference, with the generous timeout
    hasty = dataclasses.replace(_longer(tiny_lab, 600), timeout=0.05)
    for _ in range(MAX_ATTEMPTS - 1):
        got = _score(hasty, cache, silu)["silu"]
        assert got.status == "timeout" and "the machine was busy" in got.reason
    last = _score(hasty, cache, silu)["silu"]
    assert last.status == "timeout" and f"final after {MAX_ATTEMPTS} calls" in last.reason


@pytest.mark.slow
def test_a_timeout_is_no_verdict_where_the_load_is_high_for_the_cores_it_may_use(
    tiny_lab: Lab, cache: FitnessCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Confined to one core (as a container's CPU quota confines it) of a machine with more,
    # a load average of 2.25 oversubscribes the core it may use, though the machine's cores
    # could take it: a timeout then is no verdict, and two of them are not final.
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two cores, to be confined to one")
    _machine_load(monkeypatch, 1.5 * BUSY_LOAD)
    silu = _cand("F.silu(x)", "silu")
    _score(_longer(tiny_lab, 600), cache)  # the reference, with the generous timeout
    hasty = dataclasses.replace(_longer(tiny_lab, 600), timeout=0.05)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        got = [_score(hasty, cache, silu)["silu"] for _ in range(2)]
    finally:
        os.sched_setaffinity(0, allowed)
    assert [g.status for g in got] == ["timeout", "timeout"]
    assert "the machine was busy" in got[1].reason, got[1].reason


def _lab_file(path: Path, test: str = "") -> Lab:
    from minact.lab.loader import load_lab

    path.write_text(
        "[lab]\nwidth = 8\ndepth = 2\nsteps = 25\nlr = 0.02\nseeds = 2\nn_train = 32\n"
        f'n_test = 32\n\n[[task]]\nname = "sine"\nfamily = "harmonic"\ntarget = "sin(3*x)"\n{test}'
    )
    return load_lab(path)


def test_a_difference_in_a_band_between_probe_points_is_found(
    tiny_lab: Lab, cache: FitnessCache, tmp_path: Path
) -> None:
    # ReLU but for a band 0.0035 wide between two points of the probe grid (0.1919 and
    # 0.2017): the behaviour hash and a few hundred traced points can miss it; training
    # runs into it. It must train itself, not inherit ReLU's numbers.
    relu = _cand("F.relu(x)", "relu")
    band = _cand("torch.where((x > 0.1925) & (x < 0.196), 1000.0, F.relu(x))", "band")
    out = _score(tiny_lab, cache, relu, band)
    with FitnessCache(tmp_path / "fresh", EVALUATOR_VERSION) as other:
        honest = _score(tiny_lab, other, band)["band"]
    assert out["band"].fitness == honest.fitness and out["band"].tasks == honest.tasks
    assert out["band"].fitness != out["relu"].fitness  # the band matters in training
    assert out["band"].collision is not None or out["band"].behaviour_hash != relu.code_hash


def test_a_verdict_holds_only_for_the_tasks_whose_training_it_checked(
    cache: FitnessCache, tmp_path: Path
) -> None:
    # Equal to ReLU up to 65, beyond the probe's reach: on a lab whose inputs stay small
    # the two train alike; on one whose OOD inputs reach 300 they do not.
    narrow = _lab_file(tmp_path / "narrow.toml")
    wide = _lab_file(tmp_path / "wide.toml", "test = [-300.0, 300.0]\n")
    assert narrow.digest() == wide.digest()  # the same probe: the same verdict keys before
    relu = _cand("F.relu(x)", "relu")
    cap = _cand("torch.where(x > 65.0, 0.0, F.relu(x))", "cap")
    first = _score(narrow, cache, relu, cap)
    assert first["cap"].cached and first["cap"].fitness == first["relu"].fitness
    second = _score(wide, cache, relu, cap)
    with FitnessCache(tmp_path / "fresh", EVALUATOR_VERSION) as other:
        honest = _score(wide, other, cap)["cap"]
    assert second["cap"].fitness == honest.fitness != second["relu"].fitness
    assert second["cap"].collision is not None


def _unseen_preactivation(lab: Lab) -> float:
    """Returns a pre-activation that seed 1's network of the lab's first task feeds its
    first layer's activation at step 0: the same for every activation (initial weights
    depend on the task and seed alone), and never traced (only seed 0 is)."""
    import torch

    from minact.sandbox.trainer import Job, Trainer

    task = lab.tasks[0]
    seen: list[torch.Tensor] = []

    def record(z: torch.Tensor) -> torch.Tensor:
        if not seen and z.shape[0] == task.settings.seeds:  # the first batched forward
            seen.append(z.detach().clone())
        return torch.nn.functional.silu(z)

    Trainer("cpu").train([Job(0, record, task)])
    first, second = seen[0][0], seen[0][1]
    return next(float(v) for v in second.reshape(-1) if not bool((first == v).any()))


@pytest.mark.slow
def test_another_codes_failure_is_never_served(
    tiny_lab: Lab, cache: FitnessCache, tmp_path: Path
) -> None:
    # SiLU but for a spike at one float that training reaches: the spiking code's loss is
    # NaN, while every probe, traced and dense point agrees with F.silu. Served that
    # failure, F.silu would be "nonfinite" for good; it must train itself.
    at = _unseen_preactivation(tiny_lab)
    spike = _cand(f"torch.where(x == {at!r}, x * 0.0 + 3e38, x * torch.sigmoid(x))", "spike")
    silu = _cand("F.silu(x)", "silu")
    first = _score(tiny_lab, cache, spike)["spike"]
    assert first.status == "nonfinite" and "seed 1" in first.reason
    got = _score(tiny_lab, cache, silu)["silu"]
    with FitnessCache(tmp_path / "fresh", EVALUATOR_VERSION) as other:
        honest = _score(tiny_lab, other, silu)["silu"]
    assert got.ok and got.fitness == honest.fitness and got.tasks == honest.tasks
    assert got.collision is None and not got.cached and got.behaviour_hash == silu.code_hash
    again = _score(tiny_lab, cache, silu, spike)  # later calls: each finds its own results
    assert again["silu"].cached and again["silu"].fitness == honest.fitness
    assert again["spike"].status == "nonfinite" and again["spike"].cached


@pytest.mark.parametrize(("load", "kept"), [(100.0, False), (0.0, True)])
def test_a_verification_the_worker_could_not_finish_is_a_verdict_only_on_a_calm_machine(
    tiny_lab: Lab, cache: FitnessCache, monkeypatch: pytest.MonkeyPatch, load: float, kept: bool
) -> None:
    from minact.sandbox.client import WorkerClient

    silu, xsig = _cand("F.silu(x)", "silu"), _cand("x * torch.sigmoid(x)", "xsig")
    _score(tiny_lab, cache, silu)
    _machine_load(monkeypatch, load)

    def timed_out(self: WorkerClient, items: list[object], deadline: float) -> list[object]:
        return [(False, "verification timed out: no answer within 1 s")] * len(items)

    with monkeypatch.context() as m:
        m.setattr(WorkerClient, "verify", timed_out)
        got = _score(tiny_lab, cache, xsig)["xsig"]
    # It trains itself either way; on a busy machine it is no collision and no verdict.
    assert got.ok and not got.cached and got.behaviour_hash == xsig.code_hash
    assert (got.collision is not None) == kept
    verdict = cache.get_verdict(
        xsig.code_hash, silu.code_hash, tiny_lab.digest(), tiny_lab.tasks[0].digest()
    )
    assert (verdict is not None) == kept
    if not kept:  # a later call verifies it, and shares the result
        again = _score(tiny_lab, cache, xsig)["xsig"]
        assert again.cached and again.collision is None
