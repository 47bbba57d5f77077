"""Tests for minact.lab: batched training, independence from batch composition, isolation of NaN."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import pytest
import torch
import torch.nn.functional as F

from minact.lab.task import Lab, Task
from minact.sandbox.readout import Readout
from minact.sandbox.trainer import Job, Trainer
from minact.score import TaskResult


def _nan_above_half(z: torch.Tensor) -> torch.Tensor:
    return torch.where(z > 0.5, z / 0.0 * 0.0, z)


def test_training_is_deterministic_and_fits(tiny_lab: Lab) -> None:
    jobs = [Job(0, F.gelu, t) for t in tiny_lab.tasks]
    a = Trainer().train(jobs)
    b = Trainer().train(jobs)
    assert [r.ood for r in a] == [r.ood for r in b]
    assert all(
        r.ok and len(r.ood) == t.settings.seeds for r, t in zip(a, tiny_lab.tasks, strict=True)
    )
    # Even after a few steps, interpolation beats extrapolation.
    assert all(max(r.id) < min(r.ood) for r in a)


def test_results_do_not_depend_on_batch_composition(tiny_lab: Lab) -> None:
    alone = Trainer().train([Job(0, F.gelu, t) for t in tiny_lab.tasks])
    mixed_jobs = [
        Job(k, fn, t) for k, fn in enumerate((F.relu, F.gelu, torch.tanh)) for t in tiny_lab.tasks
    ]
    mixed = Trainer().train(mixed_jobs)
    n = len(tiny_lab.tasks)
    for i in range(n):
        assert mixed[n + i].ood == alone[i].ood
        assert mixed[n + i].id == alone[i].id


def test_a_diverging_candidate_fails_alone(tiny_lab: Lab) -> None:
    relu_alone = Trainer().train([Job(0, F.relu, t) for t in tiny_lab.tasks])
    jobs = [Job(0, _nan_above_half, t) for t in tiny_lab.tasks]
    jobs += [Job(1, F.relu, t) for t in tiny_lab.tasks]
    out = Trainer().train(jobs)
    n = len(tiny_lab.tasks)
    assert all(r.status == "nonfinite" and "loss is nan" in r.reason for r in out[:n])
    for i in range(n):
        assert out[n + i].ok
        assert out[n + i].ood == relu_alone[i].ood


def _no_gradient(z: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z) + 0.5  # the hidden layers get no gradient at all (None)


def _its_input(z: torch.Tensor) -> torch.Tensor:
    return z  # the very tensor the trainer passed


def _nan_slope_above_zero(z: torch.Tensor) -> torch.Tensor:
    # f is finite everywhere; above 0, f' is 0 * NaN (the branch where does not take).
    return torch.where(z < 0.0, z + 0.0 * torch.sqrt(-z), 0.0)


@pytest.mark.parametrize("hostile", [_no_gradient, _its_input, _nan_slope_above_zero])
def test_a_hostile_batch_mate_changes_no_number_of_the_other_or_its_own(
    tiny_lab: Lab, hostile: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    def key(r: TaskResult) -> tuple[object, ...]:
        return (r.status, r.reason, *map(repr, (*r.ood, *r.id, *r.trace)))

    def train(*fns: Callable[[torch.Tensor], torch.Tensor]) -> list[TaskResult]:
        return Trainer().train([Job(k, f, t) for k, f in enumerate(fns) for t in tiny_lab.tasks])

    n = len(tiny_lab.tasks)
    good, bad = train(torch.tanh), train(hostile)
    first, last = train(hostile, torch.tanh), train(torch.tanh, hostile)
    for hostiles, goods in ((first[:n], first[n:]), (last[n:], last[:n])):
        assert [key(r) for r in hostiles] == [key(r) for r in bad]
        assert [key(r) for r in goods] == [key(r) for r in good]
    assert good[0].ok


def test_weights_a_non_finite_slope_made_nan_fail_though_the_losses_stay_finite(
    tiny_lab: Lab,
) -> None:
    # f' is NaN above 0, so the first step makes the weights NaN; the activation maps NaN
    # to 0 (NaN < 0 is false), so every network outputs a constant with a finite loss.
    out = Trainer().train([Job(0, _nan_slope_above_zero, t) for t in tiny_lab.tasks])
    assert all(math.isfinite(v) for r in out for v in (*r.ood, *r.id))
    assert [r.status for r in out] == ["nonfinite"] * len(out)
    assert all("weights non-finite for seed 0" in r.reason for r in out)


def test_tasks_with_other_settings_train_in_their_own_group(tiny_lab: Lab) -> None:
    longer: Task = dataclasses.replace(
        tiny_lab.tasks[0],
        name="longer",
        settings=dataclasses.replace(tiny_lab.tasks[0].settings, steps=40, seeds=3),
    )
    out = Trainer().train([Job(0, F.silu, longer), *(Job(0, F.silu, t) for t in tiny_lab.tasks)])
    assert len(out[0].ood) == 3 and all(r.ok for r in out)
    alone = Trainer().train([Job(0, F.silu, longer)])
    assert out[0].ood == alone[0].ood


def test_compiled_training_matches_eager(tiny_lab: Lab) -> None:
    jobs = [Job(0, F.silu, t) for t in tiny_lab.tasks]
    eager = Trainer().train(jobs)
    # The eager backend checks the compile plumbing (graph capture, recompiles) on CPU fast.
    compiled = Trainer(compile_backend="eager").train(jobs)
    for e, c in zip(eager, compiled, strict=True):
        assert c.ood == e.ood


class _Forgetful(Trainer):
    """Answers each group with `answer(jobs)` instead of training."""

    def __init__(self, answer: Callable[[Sequence[Job]], list[TaskResult | None]]) -> None:
        super().__init__()
        self.answer = answer

    def _train_group(self, jobs: Sequence[Job]) -> list[TaskResult]:
        return self.answer(jobs)  # type: ignore[return-value]


def test_a_missing_result_fails_loudly_instead_of_shifting_the_rest(tiny_lab: Lab) -> None:
    done = TaskResult("ok", "", (1.0, 1.0), (0.5, 0.5))
    jobs = [Job(k, F.relu, t) for k in range(2) for t in tiny_lab.tasks]
    with pytest.raises(RuntimeError, match=r"no training result for jobs \[3\]"):
        _Forgetful(lambda group: [done] * (len(group) - 1) + [None]).train(jobs)
    with pytest.raises(ValueError):  # a group that answers fewer results than it has jobs
        _Forgetful(lambda group: [done] * (len(group) - 1)).train(jobs)


@pytest.mark.parametrize(
    ("outputs", "points", "width"),
    [(1, 64, 32), (4, 64, 32), (1, 128, 32), (1, 256, 32), (1, 96, 8)],
)
def test_the_readout_is_bit_for_bit_baddbmm(outputs: int, points: int, width: int) -> None:
    gen = torch.Generator().manual_seed(0)
    b = torch.randn(6, 1, outputs, generator=gen, requires_grad=True)
    h = torch.randn(6, points, width, generator=gen, requires_grad=True)
    w = torch.randn(6, width, outputs, generator=gen)
    w[:, :4] = 0.0  # exact zeros, and -0 * w, whose sign bmm does not keep
    w.requires_grad_(True)
    grad = torch.randn(6, points, outputs, generator=gen)
    grad[:, :8] = -0.0
    out = Readout.apply(b, h, w)
    ref = torch.baddbmm(b, h, w)
    assert torch.equal(out.detach().view(torch.int32), ref.detach().view(torch.int32))
    ours = torch.autograd.grad(out, (b, h, w), grad)
    theirs = torch.autograd.grad(ref, (b, h, w), grad)
    for a, t in zip(ours, theirs, strict=True):
        assert torch.equal(a.view(torch.int32), t.view(torch.int32))
