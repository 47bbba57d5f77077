"""Tests for minact.sandbox.admission: dynamic admission checks and the behaviour hash.

These run known, literal candidate sources in the test process (the worker's job in
production), after static validation, as `admit(validate(src).source, ...)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from minact import seeds
from minact.candidate import Candidate, Rejection
from minact.sandbox import admission, cost, fingerprint, loader
from minact.sandbox.admission import admit, probe_grid
from minact.sandbox.loader import CandidateError, load_activation
from minact.score import Admission
from minact.validate import validate

PROBE = (-10.0, 10.0)
MAX_COST = 16.0


def fn(*body: str) -> str:
    """Returns a candidate module: the usual imports and `def activation(x)` with `body`."""
    return (
        "import math\nimport torch\nimport torch.nn.functional as F\n\n\n"
        "def activation(x):\n" + "".join(f"    {line}\n" for line in body)
    )


def check(source: str) -> Admission:
    """Validates `source` (it must pass) and returns the admission of its normal form."""
    candidate = validate(source)
    assert isinstance(candidate, Candidate), candidate
    return admit(candidate.source, PROBE, MAX_COST)


def behaviour(source: str) -> str:
    result = check(source)
    assert result.ok, result
    assert result.behaviour_hash is not None
    return result.behaviour_hash


# --- 1. seeds -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(seeds.SEEDS))
def test_every_seed_is_admitted(name: str) -> None:
    result = check(seeds.seed_source(name))
    assert result.status == "ok" and result.ok and result.reason == ""
    assert result.behaviour_hash is not None
    assert re.fullmatch("[0-9a-f]{64}", result.behaviour_hash)
    assert result.cost is not None and result.cost >= 1.0


def test_seeds_have_distinct_behaviours() -> None:
    hashes = {behaviour(seeds.seed_source(n)) for n in seeds.SEEDS}
    assert len(hashes) == len(seeds.SEEDS)


# --- 2. behaviour dedup ---------------------------------------------------------------

SAME_BEHAVIOUR = {
    "silu": ["return x * torch.sigmoid(x)", "return F.silu(x)", "return x / (1 + torch.exp(-x))"],
    "relu": [
        "return torch.where(x > 0, x, 0.0)",
        "return x.clamp(min=0)",
        "return F.relu(x)",
        "return x.relu()",
        "return torch.maximum(x, torch.zeros_like(x))",
    ],
    "zero": ["return x * 0", "return torch.zeros_like(x)", "return x - x"],
}


@pytest.mark.parametrize("bodies", SAME_BEHAVIOUR.values(), ids=list(SAME_BEHAVIOUR))
def test_equal_functions_share_a_behaviour_hash(bodies: list[str]) -> None:
    assert len({behaviour(fn(b)) for b in bodies}) == 1


def test_different_functions_have_different_behaviour_hashes() -> None:
    bodies = [
        "return F.gelu(x)",
        "return F.gelu(x, approximate='tanh')",
        "return F.silu(x)",
        "return F.relu(x)",
        "return F.leaky_relu(x, negative_slope=0.01)",
        "return x",
        "return x + 1e-6",  # shows in 8 significant digits
    ]
    hashes = [behaviour(fn(b)) for b in bodies]
    assert len(set(hashes)) == len(hashes)


def test_the_fingerprint_rounds_values_and_covers_the_derivative() -> None:
    x = probe_grid(*PROBE)
    y, dy = torch.tanh(x), 1 - torch.tanh(x) ** 2

    def h(a: torch.Tensor, da: torch.Tensor) -> str:
        return fingerprint.behaviour_hash(a, da, a.float(), da.float())

    base = h(y, dy)
    assert re.fullmatch("[0-9a-f]{64}", base)
    assert h(y * (1 + 1e-14), dy) == base  # float noise
    assert h(y, dy * (1 + 1e-14)) == base
    assert h(y, dy + 1e-3) != base  # same values, different f'
    assert h(y * (1 + 1e-6), dy) != base
    zero, neg_zero = torch.tensor([0.0], dtype=torch.float64), torch.tensor([-0.0])
    assert h(neg_zero.double(), zero) == h(zero, zero)


def test_the_fingerprint_covers_float32() -> None:
    x = probe_grid(*PROBE)
    y, dy = torch.tanh(x), 1 - torch.tanh(x) ** 2
    base = fingerprint.behaviour_hash(y, dy, y.float(), dy.float())
    rounded = fingerprint.behaviour_hash(y, dy, (y.float() * (1 + 1e-6)), dy.float())
    assert rounded == base  # float32 rounding of an honest formula
    flagged = fingerprint.behaviour_hash(y, dy, torch.zeros_like(y.float()), dy.float())
    assert flagged != base  # equal in float64, something else in float32
    slope = fingerprint.behaviour_hash(y, dy, y.float(), torch.zeros_like(dy.float()))
    assert slope != base


def test_probe_points_are_exact_in_float32_and_reach_beyond_the_range() -> None:
    within, beyond = fingerprint.probe_points(*PROBE, seed=7)
    for points in (within, beyond):
        assert torch.equal(points.float().double(), points)
    shift = fingerprint.GRID_SHIFT  # the grid is shifted off 0 and the integers
    assert float(within.min()) >= PROBE[0] and float(within.max()) <= PROBE[1] + 2 * shift
    assert bool(((beyond < PROBE[0]) | (beyond > PROBE[1])).all())
    assert float(beyond.abs().max()) > 0.9 * fingerprint.REACH
    grid = probe_grid(*PROBE)
    # Salted points lie off the grid, and another salt puts them elsewhere.
    salted = within[grid.numel() :]
    assert not bool(torch.isin(salted, grid).any())
    other = fingerprint.probe_points(*PROBE, seed=8)[0][grid.numel() :]
    assert not torch.equal(salted, other)


# Code written to share another function's behaviour hash (issue 9): each must hash apart.
FORGERIES = {
    "float32-flag": ("return F.gelu(x) * ((x * 0 + 1e8 + 1) - 1e8)", "return F.gelu(x)"),
    "beyond-ten": (
        "return torch.where(torch.abs(x) > 10, 0.5 * torch.tanh(x), torch.tanh(x))",
        "return torch.tanh(x)",
    ),
    "grid-bumps": (
        "u = (x + 10 - math.sqrt(2) * 1e-3) * 2047 / 20",
        "return F.softplus(x)",
    ),
}


@pytest.mark.parametrize(("forger", "honest"), FORGERIES.values(), ids=list(FORGERIES))
def test_forgeries_hash_apart_from_what_they_imitate(forger: str, honest: str) -> None:
    lines = (forger, "return F.softplus(x) + 0.3 * torch.sin(math.pi * u) ** 2")
    body = lines if forger.startswith("u =") else (forger,)
    assert behaviour(fn(*body)) != behaviour(fn(honest))


def test_the_salt_changes_the_behaviour_hash() -> None:
    candidate = validate(seeds.seed_source("gelu"))
    assert isinstance(candidate, Candidate)
    one, two = (admit(candidate.source, PROBE, MAX_COST, seed) for seed in (1, 2))
    assert one.ok and two.ok and one.behaviour_hash != two.behaviour_hash
    assert admit(candidate.source, PROBE, MAX_COST, 1) == one


# --- 3. dynamic failures ----------------------------------------------------------------

LOOP_30 = ("y = x", "for i in range(30):", "    y = y + torch.sin(y)", "return y")

# (id, body lines, failure kind, substring of the reason). Every source passes validate.
FAILURES: list[tuple[str, tuple[str, ...], str, str]] = [
    ("log", ("return torch.log(x)",), "nonfinite", "f(x) is not finite at x = -9.99"),
    ("exp-x-squared", ("return torch.exp(x * x)",), "nonfinite", "not finite in float32"),
    ("power-1000", ("return x ** 1000",), "nonfinite", "f(x) is not finite"),
    ("inf-constant", ("return x * 1e400",), "nonfinite", "f(x) is not finite"),
    ("augmented-assign", ("x += 1", "return x"), "bad_output", "modified its input in place"),
    ("where-one-argument", ("return torch.where(x > 0)",), "bad_output", "returned tuple"),
    ("returns-none", ("return None",), "bad_output", "returned NoneType"),
    ("returns-number", ("return 1.0",), "bad_output", "returned float"),
    # A negative base the validator cannot compute: math.cos(math.pi) is -1.0.
    (
        "complex-power",
        ("return x * math.cos(math.pi) ** 0.5",),
        "bad_output",
        "torch.complex128 (a complex result",
    ),
    ("float-of-tensor", ("return float(x)",), "error", "ValueError"),
    ("math-of-tensor", ("return math.sin(x)",), "error", "ValueError"),
    ("full-like-tensor", ("return torch.full_like(x, x)",), "error", "TypeError"),
    ("truth-of-tensor", ("return x if x else -x",), "error", "RuntimeError"),
    ("zero-division", ("return x * (10 ** 18 // 0)",), "error", "ZeroDivisionError"),
    ("math-overflow", ("return x * math.pow(10, 400)",), "error", "OverflowError"),
    ("min-of-floats", ("return x * min(x, 1.0)",), "error", "RuntimeError"),
    ("bad-keyword", ("return F.gelu(x, approximate=x)",), "error", "TypeError"),
    ("heaviside", ("return torch.heaviside(x, torch.zeros_like(x))",), "error", "f'(x) cannot"),
    # The where-NaN trap: sqrt's derivative at 0 is inf, and 0 * inf in the chain rule is NaN.
    (
        "derivative-nan",
        ("return torch.where(x > 0, x, torch.sqrt(x * 0))",),
        "nonfinite",
        "f'(x) is not finite",
    ),
    ("30-sines", LOOP_30, "too_costly", "costs 60.0x GELU"),
    # Fine on the grid, not finite at random float32 inputs inside the probe range.
    (
        "nan-between-grid-points",
        ("return F.mish(x) + 0 * torch.sqrt(0.25 - torch.sin(math.pi * x * 37.3) ** 2 * 0.26)",),
        "nonfinite",
        "not finite",
    ),
    # Cheap to count (cost 16), slow to run: 15 chained Bessel functions.
    (
        "bessel-chain",
        ("y = torch.tanh(x)", "for i in range(15):", "    y = torch.special.i1(y)", "return y"),
        "too_costly",
        "GELU's time",
    ),
]


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [pytest.param(b, k, r, id=i) for i, b, k, r in FAILURES],
)
def test_dynamic_failures(body: tuple[str, ...], kind: str, reason: str) -> None:
    result = check(fn(*body))
    assert result.status == kind, result
    assert reason in result.reason
    assert result.behaviour_hash is None and result.cost is None


def test_a_reduction_that_slipped_past_validation_is_caught() -> None:
    """Defence in depth: one-argument max() is refused statically, and dynamically too."""
    raw = "def activation(x):\n    return x - max(x)\n"
    assert isinstance(validate(raw), Rejection)
    result = admit(raw, PROBE, MAX_COST)
    assert result.status == "not_pointwise" and "how many inputs" in result.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("return F.relu(x, True)", "modified its input in place"),
        ("return F.threshold(x, 0.0, 0.0, True)", "modified its input in place"),
        ("return x.float_power(2)", "changed the dtype"),
    ],
)
def test_what_validation_refuses_by_name_is_caught_by_admission_too(body: str, reason: str) -> None:
    """Defence in depth: positional `inplace` and float_power are refused statically (with
    reasons that name them), and admission still finds what they would do."""
    raw = f"def activation(x):\n    {body}\n"  # no imports: the worker binds the modules
    assert isinstance(validate(raw), Rejection)
    result = admit(raw, PROBE, MAX_COST)
    assert result.status == "bad_output" and reason in result.reason


def test_one_over_x_is_admitted() -> None:
    """The grid never hits 0 (2048 points and an irrational shift), so 1/x is finite on it.

    The nearest points are about ±0.005, where 1/x ≈ ±200 and f' ≈ -4e4: large but finite
    in float64 and float32. Its singularity is for training to punish, not admission.
    """
    x = probe_grid(*PROBE)
    assert bool((x != 0).all()) and float(x.abs().min()) > 1e-3
    result = check(fn("return 1 / x"))
    assert result.ok, result
    assert result.cost == 2.0  # the reciprocal and the multiplication by 1


def test_the_cost_limit_is_the_admit_argument() -> None:
    candidate = validate(fn("y = x", "for i in range(10):", "    y = y * 0.9 + x", "return y"))
    assert isinstance(candidate, Candidate)
    admitted = admit(candidate.source, PROBE, 25.0)
    assert admitted.ok and admitted.cost == 20.0
    refused = admit(candidate.source, PROBE, 19.9)
    assert refused.status == "too_costly" and "costs 20.0x GELU" in refused.reason


def test_cost_counts_elementwise_operations() -> None:
    x = probe_grid(*PROBE)
    assert cost.count(F.gelu, x) == (1.0, x.numel())
    assert cost.count(lambda t: t * torch.sigmoid(t), x) == (2.0, x.numel())
    assert cost.count(lambda t: t, x) == (0.0, 0)
    assert check(fn("return x * torch.sigmoid(x)")).cost == 2.0
    assert check(seeds.seed_source("gelu")).cost == 1.0


def test_a_candidate_failing_while_its_operations_are_counted_is_a_result() -> None:
    # The cost counter calls the candidate once more, under a dispatch mode: a failure
    # there is the candidate's (a reason), not an exception out of admission.
    calls: list[int] = []

    def flaky(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("only the first call works")
        return t * 2

    x = probe_grid(*PROBE)
    flaky(x)
    with pytest.raises(CandidateError, match=r"counting its operations.*RuntimeError") as info:
        cost.count(flaky, x)
    assert info.value.kind == "error"
    with pytest.raises(CandidateError, match="returned float"):
        cost.count(lambda t: 1.0, x)  # type: ignore[arg-type, return-value]


def test_time_is_measured_against_gelu() -> None:
    assert cost.time_ratio(F.gelu, *PROBE, 100.0) == pytest.approx(1.0, rel=0.9)
    slow = cost.time_ratio(lambda t: torch.special.i1(torch.special.i1(t)), *PROBE, 100.0)
    cheap = cost.time_ratio(torch.relu, *PROBE, 100.0)
    assert slow > 4 * cheap


@pytest.mark.parametrize(
    ("timings", "verdict"),
    [
        ([35.0, 30.0], "admitted"),  # within noise of the limit (32x), and faster timed again
        ([35.0, 34.0], "takes 34x"),  # timed again, still over: refused with the faster time
        ([50.0], "takes 50x"),  # far over: refused on the first timing
    ],
)
def test_a_time_near_the_limit_is_measured_again_before_a_refusal(
    monkeypatch: pytest.MonkeyPatch, timings: list[float], verdict: str
) -> None:
    # The measured ratio of one candidate spreads by about 12% between calls, and a
    # too_costly verdict is cached for good: one noisy timing near the limit is not enough.
    asked: list[int] = []

    def timed(fn: object, lo: float, hi: float, limit: float, repeats: int = 5) -> float:
        asked.append(repeats)
        return timings[len(asked) - 1]

    monkeypatch.setattr(cost, "time_ratio", timed)
    x = probe_grid(*PROBE)
    if verdict == "admitted":
        assert admission._check_cost(F.gelu, x, PROBE, 16.0) == 1.0
    else:
        with pytest.raises(CandidateError, match=verdict):
            admission._check_cost(F.gelu, x, PROBE, 16.0)
    assert asked == [5, 15][: len(timings)]


def test_a_shape_dependent_function_is_not_pointwise() -> None:
    # 1-D and 2-D inputs (the grid checks) agree; a 3-D batch, as in training, does not.
    def sneaky(t: torch.Tensor) -> torch.Tensor:
        return F.gelu(t) if t.dim() < 3 else torch.zeros_like(t)

    with pytest.raises(CandidateError, match="3-D float32") as caught:
        admission._check_random(sneaky, 0, *PROBE)
    assert caught.value.kind == "not_pointwise"


# Not expressible as a valid candidate (the validator refuses reductions and rolls), so
# the pointwise checker is tested directly on Python functions.
_N = probe_grid(*PROBE).numel()
_S0 = float(probe_grid(*PROBE).sum())

NOT_POINTWISE: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    "roll": (lambda t: torch.roll(t, 1), "reordered"),
    "cumsum": (lambda t: torch.cumsum(t, 0), "reordered"),
    "minus-mean": (lambda t: t - t.mean(), "how many inputs"),
    "minus-max": (lambda t: t - t.max(), "how many inputs"),
    "times-ndim": (lambda t: t * t.dim(), "input's shape"),
    # Sum-dependent only at the grid's own size: blind to order, count and shape, not to bumps.
    "plus-sum": (lambda t: t + (t.numel() == _N) * (t.sum() - _S0), "other outputs"),
}


@pytest.mark.parametrize(("f", "reason"), NOT_POINTWISE.values(), ids=list(NOT_POINTWISE))
def test_the_pointwise_checker(f: Callable[[torch.Tensor], torch.Tensor], reason: str) -> None:
    x = probe_grid(*PROBE)
    with torch.no_grad(), pytest.raises(CandidateError) as caught:
        admission._check_pointwise(f, x, f(x))
    assert caught.value.kind == "not_pointwise"
    assert reason in caught.value.reason


@pytest.mark.parametrize("f", [torch.sin, F.gelu, lambda t: torch.where(t > 0, t, 0.1 * t)])
def test_the_pointwise_checker_passes_pointwise_functions(
    f: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    x = probe_grid(*PROBE)
    with torch.no_grad():
        admission._check_pointwise(f, x, f(x))


# --- 4. load_activation: defence in depth ---------------------------------------------
# These sources bypass the validator on purpose: they test the worker's own guard.


def test_open_is_not_a_builtin_of_candidates(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("secret")
    act = load_activation(f"def activation(x):\n    return open({str(target)!r})\n")
    with pytest.raises(NameError, match="open"):
        act(torch.zeros(3))
    result = admit(f"def activation(x):\n    return open({str(target)!r}).read()\n", PROBE, 16.0)
    assert result.status == "error" and "NameError" in result.reason


@pytest.mark.parametrize("name", ["eval", "exec", "getattr", "globals", "type", "print"])
def test_dangerous_builtins_are_missing(name: str) -> None:
    act = load_activation(f"def activation(x):\n    return {name}\n")
    with pytest.raises(NameError):
        act(torch.zeros(3))


def test_only_torch_can_be_imported() -> None:
    act = load_activation("def activation(x):\n    return __import__('os')\n")
    with pytest.raises(ImportError, match="'os' is not available"):
        act(torch.zeros(3))
    act = load_activation("def activation(x):\n    import subprocess\n    return x\n")
    with pytest.raises(ImportError, match="'subprocess'"):
        act(torch.zeros(3))
    with pytest.raises(ImportError):
        loader._torch_only_import("torchvision_but_not_torch")
    assert loader._torch_only_import("torch") is torch
    assert loader._torch_only_import("torch.nn.functional", fromlist=["gelu"]) is F


def test_definition_time_failures_are_the_candidates() -> None:
    with pytest.raises(CandidateError, match="defining activation raised ImportError") as e:
        load_activation("import os\n\ndef activation(x):\n    return x\n")
    assert e.value.kind == "error"
    with pytest.raises(CandidateError, match="does not define activation"):
        load_activation("def act(x):\n    return x\n")
    with pytest.raises(CandidateError, match="SyntaxError"):
        load_activation("def activation(x):\n    return x +\n")
    assert admit("activation = 3\n", PROBE, 16.0).status == "error"


def test_the_namespace_binds_the_canonical_names() -> None:
    act = load_activation("def activation(x):\n    return F.gelu(x) + torch.sin(x) * math.pi\n")
    x = torch.linspace(-2, 2, 5)
    assert torch.allclose(act(x), F.gelu(x) + torch.sin(x) * torch.pi)


def test_deep_recursion_is_an_error() -> None:
    result = admit("def activation(x):\n    return activation(x)\n", PROBE, 16.0)
    assert result.status == "error" and "RecursionError" in result.reason


# --- 5. stability -------------------------------------------------------------------------

ORDERED = [seeds.seed_source(n) for n in ("gelu", "snake", "gsp")] + [
    fn("return torch.tanh(x) - torch.sigmoid(x)"),
    fn("return torch.log(x)"),
    fn("return x * torch.sigmoid(x)"),
]


def _admit_all(sources: list[str]) -> dict[str, Admission]:
    out = {}
    for source in sources:
        candidate = validate(source)
        assert isinstance(candidate, Candidate)
        out[source] = admit(candidate.source, PROBE, MAX_COST)
    return out


def test_admission_is_stable_and_independent_of_order() -> None:
    torch.manual_seed(0)
    forward = _admit_all(ORDERED)
    torch.manual_seed(12345)
    again = _admit_all(ORDERED)
    backward = _admit_all(ORDERED[::-1])
    assert forward == again == backward
    assert sum(a.ok for a in forward.values()) == 5


def test_admission_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(7)
    state = torch.get_rng_state()
    assert admit("def activation(x):\n    return x - max(x)\n", PROBE, MAX_COST).status == (
        "not_pointwise"
    )
    assert check(seeds.seed_source("gelu")).ok
    assert torch.equal(torch.get_rng_state(), state)


def test_the_hash_depends_on_the_probe_range() -> None:
    source = seeds.seed_source("gelu")
    candidate = validate(source)
    assert isinstance(candidate, Candidate)
    wide = admit(candidate.source, (-10.0, 10.0), MAX_COST)
    narrow = admit(candidate.source, (-3.0, 3.0), MAX_COST)
    assert wide.ok and narrow.ok and wide.behaviour_hash != narrow.behaviour_hash
