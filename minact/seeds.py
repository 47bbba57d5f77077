"""Built-in reference activations, as source text: the first population and the baselines.

They take the same path as any LLM reply (validate, fingerprint, cache, evaluate), so
the report's baselines cost no extra code. `minact seeds` lists the formulas; gsp and gmtu use the
paper's forms (normalised sinc multiplying GELU; +0.1x), which third-party code often gets wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from minact.candidate import Candidate
from minact.validate import validate

__all__ = [
    "ALIASES",
    "REFERENCE",
    "SEEDS",
    "Seed",
    "get_seed",
    "seed_candidate",
    "seed_candidates",
    "seed_source",
]


@dataclass(frozen=True, slots=True)
class Seed:
    """A reference activation.

    Attributes:
        name: the name users type (`minact score gelu`).
        formula: the maths, for tables.
        body: the expression `activation(x)` returns.
        note: where it comes from.
    """

    name: str
    formula: str
    body: str
    note: str


_TABLE = [
    Seed("relu", "max(x, 0)", "F.relu(x)", "the reference: fitness 0 by definition"),
    Seed("gelu", "x·Φ(x)", "F.gelu(x)", "exact erf form"),
    Seed("silu", "x·σ(x)", "F.silu(x)", "Swish; Ramachandran et al. 2017"),
    Seed("tanh", "tanh(x)", "torch.tanh(x)", ""),
    Seed("sigmoid", "σ(x)", "torch.sigmoid(x)", ""),
    Seed("elu", "x if x > 0 else exp(x) − 1", "F.elu(x)", ""),
    Seed("softplus", "log(1 + exp(x))", "F.softplus(x)", ""),
    Seed("leaky_relu", "max(x, 0.01·x)", "F.leaky_relu(x, negative_slope=0.01)", ""),
    Seed("mish", "x·tanh(softplus(x))", "F.mish(x)", ""),
    Seed("selu", "λ·elu_α(x)", "F.selu(x)", ""),
    Seed("snake", "x + sin²(x)", "x + torch.sin(x) ** 2", "Ziyin et al. 2020"),
    Seed(
        "gelusine",
        "GELU(x) + 0.1·sin(x)",
        "F.gelu(x) + 0.1 * torch.sin(x)",
        "found by Vitvitskyi et al. 2026",
    ),
    Seed(
        "gsp",
        "GELU(x)·(1 + 0.5·sinc(x)), sinc(x) = sin(πx)/(πx)",
        "F.gelu(x) * (1 + 0.5 * torch.sinc(x))",
        "GELU-Sinc-Perturbation, Vitvitskyi et al. 2026",
    ),
    Seed(
        "gmtu",
        "tanh(1.5x)·exp(−0.2x²) + 0.1x",
        "torch.tanh(1.5 * x) * torch.exp(-0.2 * x ** 2) + 0.1 * x",
        "found by Vitvitskyi et al. 2026",
    ),
]

SEEDS: dict[str, Seed] = {s.name: s for s in _TABLE}
ALIASES = {"swish": "silu", "gelu_sinc": "gsp", "lrelu": "leaky_relu"}
REFERENCE = "relu"


def get_seed(name: str) -> Seed:
    """Returns the seed called `name` (or an alias); raises KeyError listing the known names."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        return SEEDS[key]
    except KeyError:
        raise KeyError(f"unknown built-in {name!r}; known: {', '.join(SEEDS)}") from None


def seed_source(name: str) -> str:
    """Returns the full candidate source text of the seed called `name`."""
    s = get_seed(name)
    doc = f'    """{s.name}: {s.formula}."""\n'
    return (
        "import math\nimport torch\nimport torch.nn.functional as F\n\n\n"
        f"def activation(x):\n{doc}    return {s.body}\n"
    )


def seed_candidate(name: str) -> Candidate:
    """Returns the validated Candidate of the seed called `name` (named by its canonical name)."""
    seed = get_seed(name)
    candidate = validate(seed_source(seed.name), name=seed.name)
    # Checked by tests/validate/test_validate.py: every built-in passes static validation.
    assert isinstance(candidate, Candidate), f"built-in {seed.name} fails validation"
    return candidate


def seed_candidates(names: Iterable[str] = SEEDS) -> list[Candidate]:
    """Returns the validated Candidates of the named seeds (default: all), in order."""
    return [seed_candidate(n) for n in names]
