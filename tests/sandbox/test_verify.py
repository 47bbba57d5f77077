"""Tests for minact.sandbox.trace and minact.sandbox.verify: checking reuse on training's inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minact.lab.task import Lab
from minact.sandbox.loader import Activation
from minact.sandbox.trace import EXTREMES, TRACE_POINTS
from minact.sandbox.trainer import Job, Trainer
from minact.sandbox.verify import verify


def _body(expr: str) -> str:
    return f"def activation(x):\n    return {expr}\n"


def _recorder(seen: list[torch.Tensor]) -> Activation:
    def act(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.detach().reshape(-1).clone())
        return F.silu(z)

    return act


def test_results_carry_a_trace_of_what_the_activation_saw(tiny_lab: Lab) -> None:
    seen: list[torch.Tensor] = []
    task = tiny_lab.tasks[0]
    (result,) = Trainer().train([Job(0, _recorder(seen), task)])
    trace = torch.tensor(result.trace)
    assert result.ok and 0 < trace.numel() <= TRACE_POINTS
    assert bool(torch.isfinite(trace).all())
    assert torch.equal(trace.float().double(), trace.double())  # float32 values
    everything = torch.cat(seen).abs()
    # The largest pre-activations are in it (training and the final OOD pass saw them).
    assert float(trace.abs().max()) <= float(everything.max())
    assert float(trace.abs().max()) >= float(everything.topk(EXTREMES * 50).values.min())
    # The trace does not depend on what else trains in the batch.
    (again, _) = Trainer().train([Job(0, F.silu, task), Job(1, torch.tanh, task)])
    assert again.trace == result.trace


def test_equal_functions_written_differently_verify() -> None:
    points = [float(v) for v in torch.linspace(-40, 40, 997)]
    for ours, theirs in [
        ("x * torch.sigmoid(x)", "F.silu(x)"),
        ("0.5 * x * (1 + torch.erf(x / math.sqrt(2)))", "F.gelu(x)"),
        ("torch.where(x > 0, x, 0.0)", "F.relu(x)"),
    ]:
        got = verify(_body(ours), _body(theirs), points, "cpu")
        assert got == {"match": True, "reason": ""}, (ours, got)


def test_what_differs_in_training_does_not_verify() -> None:
    points = [float(v) for v in torch.linspace(-40, 40, 997)]
    for ours, theirs, what in [
        ("F.silu(x) * ((x * 0 + 1e8 + 1) - 1e8)", "F.silu(x)", "f("),  # float32 flag
        (
            "torch.where(torch.abs(x) > 10, 0.5 * torch.tanh(x), torch.tanh(x))",
            "torch.tanh(x)",
            "f(",
        ),
        ("F.gelu(x) + 1e-3 * x", "F.gelu(x)", "f("),
        ("F.relu(x) + 0.0 * torch.sin(x) ** 2", "F.relu(x)", ""),  # equal: control
    ]:
        got = verify(_body(ours), _body(theirs), points, "cpu")
        if what:
            assert not got["match"] and what in got["reason"], (ours, got)
        else:
            assert got["match"], got


def test_a_candidate_that_fails_on_training_inputs_does_not_verify() -> None:
    got = verify(_body("torch.full_like(x, x)"), _body("F.relu(x)"), [0.5, -1.0], "cpu")
    assert not got["match"] and "TypeError" in got["reason"]


def test_the_dense_check_reaches_beyond_the_traces_largest_input() -> None:
    # Training's steps between the trace's moments can feed inputs a little beyond the
    # largest the trace kept: code that differs only there does not verify.
    points = [float(v) for v in torch.linspace(-100, 100, 997)]
    ours = "torch.where(torch.abs(x) > 150, 0.5 * torch.tanh(x), torch.tanh(x))"
    got = verify(_body(ours), _body("torch.tanh(x)"), points, "cpu", seed=7)
    assert not got["match"] and "dense check" in got["reason"], got
    # Beyond the margin it is not looked for (training would not have fed it).
    far = "torch.where(torch.abs(x) > 250, 0.5 * torch.tanh(x), torch.tanh(x))"
    assert verify(_body(far), _body("torch.tanh(x)"), points, "cpu", seed=7)["match"]
