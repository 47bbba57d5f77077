"""Task families as distributions: seeded generators of random target expressions.

A `[[family]]` table of a tasks file (loader.py) names a generator, a count and a seed; the
generator's stream for that seed gives the targets, in order, and the loader keeps the first
`count` that are finite and not constant on their data. Another seed is a fresh draw from the
same distribution: a held-out set of tasks by construction.

The stream is a pure function of (generator, seed, index): each number comes from a sha256 of
those and a counter, so a lab file means the same tasks on every machine and with every numpy
version. Coefficients are rounded so that the targets stay readable in reports.

Generators, by what their targets do outside the training box:
- "polynomial" (grow): a random polynomial of degree 2 to 5 in x, or in x1 and x2.
- "fourier" (oscillate): a random Fourier series of 1 to 4 terms, frequencies 0.5 to 5.
- "saturating" (level off): 1 or 2 sigmoid-like, arctan-like or bump terms.
- "feynman" (mixed): a product of 2 or 3 factors of physics-formula shapes (powers, inverse
  squares, square roots, Gaussians, oscillations, saturations), one per variable, or a
  composition such as a law of cosines, in 1 to 3 variables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["GENERATORS", "Draw", "targets"]

_T = TypeVar("_T")


class Draw:
    """A deterministic stream of random numbers for one generated target."""

    def __init__(self, generator: str, seed: int, index: int) -> None:
        self._key = f"{generator}:{seed}:{index}"
        self._counter = 0

    def unit(self) -> float:
        """Returns the next number, uniform in [0, 1)."""
        self._counter += 1
        digest = hashlib.sha256(f"{self._key}:{self._counter}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def uniform(self, lo: float, hi: float, digits: int = 2) -> float:
        """Returns a number uniform in [lo, hi), rounded to `digits` decimals."""
        return round(lo + (hi - lo) * self.unit(), digits)

    def integer(self, lo: int, hi: int) -> int:
        """Returns an integer uniform in lo..hi (both included)."""
        return lo + min(int(self.unit() * (hi - lo + 1)), hi - lo)

    def choice(self, options: Sequence[_T]) -> _T:
        """Returns one of `options`, uniformly."""
        return options[self.integer(0, len(options) - 1)]

    def signed(self, lo: float, hi: float) -> float:
        """Returns a number with magnitude uniform in [lo, hi) and a random sign."""
        magnitude = self.uniform(lo, hi)
        return magnitude if self.unit() < 0.5 else -magnitude


def _sum(terms: Sequence[str]) -> str:
    """Returns the terms joined into one expression ("a - b" rather than "a + -b")."""
    text = terms[0]
    for t in terms[1:]:
        text += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return text


def _polynomial(d: Draw) -> str:
    degree = d.integer(2, 5)
    if d.unit() < 0.7:  # one variable
        terms = [f"{d.signed(0.3, 1.0)}*x**{degree}"]
        terms += [f"{c}*x**{k}" for k in range(degree - 1, 0, -1) if (c := d.signed(0.0, 1.0))]
        terms.append(str(d.signed(0.0, 0.5)))
        return _sum([t.replace("x**1", "x") for t in terms])
    monomials = [(a, k - a) for k in range(1, degree + 1) for a in range(k + 1)]
    chosen = {d.choice(monomials) for _ in range(3)} | {(d.integer(1, degree - 1), 1)}
    terms = []
    for a, b in sorted(chosen, reverse=True):
        power = "*".join(p for p in (_pow("x1", a), _pow("x2", b)) if p)
        terms.append(f"{d.signed(0.3, 1.0)}*{power}")
    return _sum(terms)


def _plus(c: float) -> str:
    """Returns " + c" or " - |c|" (empty for 0), to add a signed constant to an expression."""
    return "" if c == 0 else f" + {c}" if c > 0 else f" - {-c}"


def _pow(v: str, k: int) -> str:
    return "" if k == 0 else v if k == 1 else f"{v}**{k}"


def _fourier(d: Draw) -> str:
    terms = []
    for _ in range(d.integer(1, 4)):
        w, phase, a = d.uniform(0.5, 5.0), d.uniform(0.0, 3.14), d.signed(0.2, 1.0)
        fn = d.choice(("sin", "cos"))
        if d.unit() < 0.2:  # a plane wave in two variables
            terms.append(f"{a}*{fn}({w}*x1{_plus(d.signed(0.5, 3.0))}*x2 + {phase})")
        else:
            terms.append(f"{a}*{fn}({w}*x + {phase})")
    if any("x1" in t for t in terms):
        terms = [t.replace("*x +", "*x1 +") for t in terms]
    return _sum(terms)


_SATURATING: tuple[Callable[[Draw], str], ...] = (
    lambda d: f"tanh({d.uniform(0.5, 3.0)}*x{_plus(d.signed(0.0, 1.0))})",
    lambda d: f"arctan({d.uniform(0.5, 4.0)}*x{_plus(d.signed(0.0, 1.0))})",
    lambda d: f"x/sqrt(1 + {d.uniform(0.5, 4.0)}*x**2)",
    lambda d: f"exp(-{d.uniform(0.5, 3.0)}*(x{_plus(d.signed(0.0, 0.8))})**2)",
    lambda d: f"1/(1 + exp(-{d.uniform(1.0, 5.0)}*(x{_plus(d.signed(0.0, 0.8))})))",
    lambda d: f"x/(1 + {d.uniform(0.5, 3.0)}*abs(x))",
)


def _saturating(d: Draw) -> str:
    terms = [f"{d.signed(0.3, 1.0)}*{d.choice(_SATURATING)(d)}" for _ in range(d.integer(1, 2))]
    return _sum(terms)


# Factor shapes of physics formulas, in one variable V (finite on the whole real line).
_FACTORS: tuple[Callable[[Draw], str], ...] = (
    lambda d: "V",
    lambda d: "V**2",
    lambda d: f"(V + {d.uniform(1.5, 3.0)})",  # a positive quantity, shifted
    lambda d: f"sqrt(V**2 + {d.uniform(0.2, 1.0)})",
    lambda d: f"1/(V**2 + {d.uniform(0.3, 1.5)})",  # inverse square, softened
    lambda d: f"exp(-V**2/{d.uniform(0.5, 2.0)})",
    lambda d: f"cos({d.uniform(0.5, 3.0)}*V)",
    lambda d: f"tanh({d.uniform(0.5, 2.0)}*V)",
)
_COMPOSITIONS: tuple[Callable[[Draw], str], ...] = (
    # law of cosines (I.29.16), the phase scaled
    lambda d: f"sqrt(x1**2 + x2**2 - 2*x1*x2*cos({d.uniform(0.5, 2.0)}*x3))",
    # anharmonic oscillator (I.50.26), the anharmonicity drawn
    lambda d: f"x1*(cos(x2) + {d.uniform(0.1, 1.0)}*cos(x2)**2)",
    # Coulomb-like, with a softened distance
    lambda d: f"x1*x2/({d.uniform(0.3, 1.5)} + x3**2)",
    # relativistic energy times a Boltzmann-like factor
    lambda d: f"sqrt({d.uniform(0.5, 2.0)} + x1**2)*exp(-x2**2/{d.uniform(0.5, 2.0)})",
)


def _feynman(d: Draw) -> str:
    if d.unit() < 0.2:
        return f"{d.signed(0.5, 1.5)}*{d.choice(_COMPOSITIONS)(d)}"
    n = d.integer(1, 3)
    names = ("x",) if n == 1 else tuple(f"x{i}" for i in range(1, n + 1))
    factors = [d.choice(_FACTORS)(d).replace("V", v) for v in names]
    if n == 1:  # a single variable gets two factors, so the target is still a product
        factors.append(d.choice(_FACTORS)(d).replace("V", "x"))
    return f"{d.signed(0.5, 1.5)}*" + "*".join(factors)


GENERATORS: dict[str, Callable[[Draw], str]] = {
    "polynomial": _polynomial,
    "fourier": _fourier,
    "saturating": _saturating,
    "feynman": _feynman,
}


def targets(generator: str, seed: int) -> Iterator[str]:
    """Yields the target expressions of `generator`'s stream for `seed`, without end."""
    make = GENERATORS[generator]
    index = 0
    while True:
        index += 1
        yield make(Draw(generator, seed, index))
