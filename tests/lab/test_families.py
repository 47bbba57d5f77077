"""Tests for task families as distributions: the generators and [[family]] tables."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from minact.errors import ConfigError
from minact.lab import families
from minact.lab.expression import parse_expression
from minact.lab.loader import MAX_OOD_SCALE, load_lab
from minact.lab.sampling import sample

# The first targets of each stream for seed 1. They pin the generators: a change here changes
# every lab built from families (the default lab among them), so it must be deliberate.
FIRST_TARGETS = {
    "polynomial": ["0.71*x1*x2 + 0.96*x2", "0.68*x**3 + 0.65*x**2 + 0.35*x + 0.18"],
    "fourier": [
        "0.49*cos(3.46*x + 0.43) - 0.2*cos(1.85*x + 0.18) - 0.7*sin(3.19*x + 3.12) "
        "+ 0.89*sin(0.99*x + 1.03)",
        "-0.81*cos(1.63*x + 2.37)",
    ],
    "saturating": [
        "-0.6*x/sqrt(1 + 2.41*x**2) + 0.63*tanh(2.55*x - 0.83)",
        "0.62*x/(1 + 1.0*abs(x))",
    ],
    "feynman": ["-1.07*exp(-x1**2/1.62)*exp(-x2**2/1.21)", "-0.96*1/(x**2 + 0.66)*cos(1.69*x)"],
}

LAB = """
[lab]
steps = 20
n_train = 32
n_test = 32
seeds = 1
"""


def _family(
    name: str = "poly", generator: str = "polynomial", count: int = 3, **extra: object
) -> str:
    text = f'\n[[family]]\nname = "{name}"\ngenerator = "{generator}"\ncount = {count}\n'
    return text + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in extra.items())


def _load(tmp_path: Path, text: str) -> list:  # type: ignore[type-arg]
    path = tmp_path / "tasks.toml"
    path.write_text(text, encoding="utf-8")
    return list(load_lab(path).tasks)


def test_generator_streams_are_pinned() -> None:
    for generator, expected in FIRST_TARGETS.items():
        assert list(itertools.islice(families.targets(generator, 1), 2)) == expected


@pytest.mark.parametrize("generator", families.GENERATORS)
def test_every_generator_writes_valid_varied_targets(generator: str) -> None:
    texts = list(itertools.islice(families.targets(generator, 5), 40))
    assert len(set(texts)) == 40
    for text in texts:
        expression = parse_expression(text)
        assert 1 <= len(expression.variables) <= 3


def test_draws_are_uniform_enough_and_in_range() -> None:
    d = families.Draw("g", 0, 1)
    units = [d.unit() for _ in range(2000)]
    assert 0.0 <= min(units) and max(units) < 1.0 and abs(np.mean(units) - 0.5) < 0.03
    assert {d.integer(1, 3) for _ in range(200)} == {1, 2, 3}
    values = [d.signed(0.5, 2.0) for _ in range(50)]
    assert all(0.5 <= abs(v) <= 2.0 for v in values) and min(values) < 0 < max(values)


def test_a_family_table_expands_into_named_tasks_of_its_family(tmp_path: Path) -> None:
    tasks = _load(tmp_path, LAB + _family(count=3, seed=4, steps=30, train=[-1.0, 1.0]))
    assert [t.name for t in tasks] == ["poly-4-001", "poly-4-002", "poly-4-003"]
    assert {t.family for t in tasks} == {"poly"} and {t.kind for t in tasks} == {"regression"}
    assert all(t.settings.steps == 30 and t.settings.seeds == 1 for t in tasks)
    stream = [
        parse_expression(s).source for s in itertools.islice(families.targets("polynomial", 4), 10)
    ]
    sources = [t.target.source for t in tasks]
    assert sources == [s for s in stream if s in sources][:3]  # in stream order
    for t in tasks:
        assert t.train == ((-1.0, 1.0),) * len(t.variables)
        assert float(np.max(np.abs(sample(t).y_ood))) <= MAX_OOD_SCALE


def test_a_smaller_count_is_a_prefix_and_another_seed_a_fresh_draw(tmp_path: Path) -> None:
    four = _load(tmp_path, LAB + _family(count=4, seed=1))
    two = _load(tmp_path, LAB + _family(count=2, seed=1))
    assert [t.digest() for t in two] == [t.digest() for t in four[:2]]
    fresh = _load(tmp_path, LAB + _family(count=4, seed=2))
    assert not {t.digest() for t in fresh} & {t.digest() for t in four}


def test_families_and_tasks_mix_in_one_file(tmp_path: Path) -> None:
    text = LAB + '[[task]]\nname = "sine"\nfamily = "harmonic"\ntarget = "sin(3*x)"\n'
    text += _family("wave", "fourier", 2) + _family("bump", "saturating", 2)
    tasks = _load(tmp_path, text)
    assert [t.family for t in tasks] == ["harmonic", "wave", "wave", "bump", "bump"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_family(generator="chebyshev"), "[[family]] 'poly' (#1): key 'generator' must be one of"),
        (
            _family(count=0),
            "[[family]] 'poly' (#1): key 'count' must be an integer in 1..1000, got 0",
        ),
        (_family(seed=-1), "key 'seed' must be an integer >= 0, got -1"),
        # Beyond TOML's 64-bit integers (tomllib reads them): a name of the seed's length.
        (
            _family(seed=10**40),
            f"key 'seed' must be an integer >= 0 and at most {2**63 - 1} (TOML's 64-bit",
        ),
        (_family(data_seed=2**63), "key 'data_seed' must be an integer >= 0 and at most"),
        (_family(width=2.5), "key 'width' must be an integer"),
        (_family(target="x"), "[[family]] 'poly' (#1): unknown key 'target'"),
        (
            '\n[[family]]\nname = "p"\ngenerator = "fourier"\n',
            "[[family]] #1: key 'count' is required",
        ),
        (_family(train=[-1.0, 1.0], test=[-1.0, 1.0]), "OOD region"),
    ],
)
def test_family_errors_name_the_file_family_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, LAB + text)
    assert str(info.value).startswith(str(tmp_path / "tasks.toml"))
    assert message in str(info.value)


def test_a_family_key_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"needs at least one \[\[task\]\] or \[\[family\]\] table"
    ):
        _load(tmp_path, 'family = "poly"\n' + LAB)


def test_a_duplicate_name_across_families_is_refused(tmp_path: Path) -> None:
    # Another generator, same name and seed: the same task names, not the same tasks.
    text = LAB + _family(count=1, seed=3) + _family(count=1, seed=3, generator="fourier")
    with pytest.raises(
        ConfigError, match=r"\[\[family\]\] #2: key 'name' 'poly-3-001' is already used"
    ):
        _load(tmp_path, text)
