"""Tests for minact.validate.repair: the slips models make are rewritten into code that
validates and computes, element by element, what the author wrote; valid code, code
that binds the names itself, and hostile input are left alone."""

from __future__ import annotations

import ast
import math
import random
from typing import Any

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minact import seeds
from minact.candidate import Candidate
from minact.search.mutate import Mutator
from minact.validate import MAX_NODES, MAX_SOURCE_CHARS, tidy, validate
from minact.validate.repair import Repaired, repair

from .test_validate import FRAGMENTS

SLIPS = {
    "bare calls": (
        "def activation(x):\n    return sigmoid(1.5 * x) * exp(-0.2 * x ** 2) + 0.1 * x\n",
        ["`sigmoid(…)` → `torch.sigmoid(…)`", "`exp(…)` → `torch.exp(…)`"],
    ),
    "the function twice": (
        "import torch\n\ndef activation(x):\n    return torch.tanh(x)\n\n"
        "# another candidate\ndef activation(x):\n    return torch.tanh(x) + 0.1 * x\n",
        ["kept the last of 2 `def activation` (the one Python calls)"],
    ),
    "math on a tensor": (
        "import math\ndef activation(x):\n    y = torch.sin(x) ** 2 + math.cos(x)\n"
        "    return y * math.exp(-math.fabs(y)) + math.sqrt(2.0)\n",
        [
            "`math.cos` on a tensor → `torch.cos`",
            "`math.fabs` on a tensor → `torch.abs`",
            "`math.exp` on a tensor → `torch.exp`",
        ],
    ),
    "numpy": (
        "import numpy as np\ndef activation(x):\n    return np.tanh(x) + 0.1 * np.sin(np.pi * x)\n",
        [
            "dropped `import numpy` (candidates compute with torch)",
            "`np.tanh` → `torch.tanh`",
            "`np.pi` → `math.pi`",
            "`np.sin` → `torch.sin`",
        ],
    ),
    "if/elif/else of returns": (
        "def activation(x):\n    if x < -3:\n        return 0.1 * x\n    elif x > 3:\n"
        "        return x\n    else:\n        return F.gelu(x) + 0.1 * torch.sin(x)\n",
        ["`if` on a tensor → `torch.where`"],
    ),
    "if without else, then return": (
        "def activation(x):\n    y = x * torch.sigmoid(x)\n    if 0 < x < 1 and not x > 0.5:\n"
        "        return 0\n    return y\n",
        ["`if` on a tensor → `torch.where`"],
    ),
    "if/elif/else whose branches compute their own locals": (
        "def activation(x):\n    if x < -4 or x > 4:\n        return F.relu(x)\n    elif x < -1:\n"
        "        s = torch.sigmoid(1.85 * x + 0.18)\n        return s * x\n    else:\n"
        "        t = torch.tanh(2.55 * x - 0.83) + 0.1\n        u = t * t\n        return u * x\n",
        ["`if` on a tensor → `torch.where`"],
    ),
    "if that assigns": (
        "def activation(x):\n    y = torch.tanh(x)\n    if x > 0:\n        y = y + x\n"
        "    if x < -2 or x > 2:\n        z = 0.5 * y\n    else:\n        z = y\n    return z\n",
        ["`if` on a tensor → `torch.where`"],
    ),
    "conditional expression and max": (
        "def activation(x):\n    return max(x, 0.1 * x) if x > -1 else min(0, x) * 0.01\n",
        [
            "`max(…)` on a tensor → elementwise `torch.maximum`",
            "`min(…)` on a tensor → elementwise `torch.clamp`",
            "`a if cond else b` on a tensor → `torch.where(cond, a, b)`",
        ],
    ),
    "torch for F": (
        "def activation(x):\n    return torch.gelu(x) + 0.1 * torch.mish(torch.sin(x))\n",
        ["`torch.gelu` → `F.gelu`", "`torch.mish` → `F.mish`"],
    ),
    "F for torch": (
        "def activation(x):\n    return F.gelu(x) + 0.1 * F.sin(2 * x) * F.exp(-x ** 2)\n",
        ["`F.sin` → `torch.sin`", "`F.exp` → `torch.exp`"],
    ),
    "a constant at the top level": (
        "import torch\nALPHA = 0.3\nFREQ = 2 * ALPHA + 1\n\ndef activation(x):\n"
        "    return torch.tanh(x) + ALPHA * torch.sin(FREQ * x)\n",
        [
            "moved `ALPHA = …` into the function (top level: imports only)",
            "moved `FREQ = …` into the function (top level: imports only)",
        ],
    ),
    "a constant read through another": (
        "import torch\nSCALE = 0.5\nSLOPE = 2 * SCALE\n\ndef activation(x):\n"
        "    return torch.tanh(SLOPE * x)\n",
        [
            "moved `SCALE = …` into the function (top level: imports only)",
            "moved `SLOPE = …` into the function (top level: imports only)",
        ],
    ),
    "example code after the function": (
        "import torch\nfrom torch.nn.functional import F\n\ndef activation(x):\n"
        "    return F.gelu(x) + A * torch.sin(x)\n\n# try it\nx = torch.tensor([-1.0, 0.5])\n"
        "y = activation(x)\nprint(y)\nA = 0.1\n\ndef show():\n    print(activation(x))\n\n"
        "if __name__ == '__main__':\n    show()\n",
        [
            "`from torch.nn.functional import F` → `import torch.nn.functional as F`",
            "moved `A = …` into the function (top level: imports only)",
            "dropped 5 top-level statements the function does not read (example or test code)",
        ],
    ),
    "a name the function binds itself": (
        "y = 2\nx = torch.ones(3)\ndef activation(x):\n    y = torch.tanh(x)\n    return y\n",
        ["dropped 2 top-level statements the function does not read (example or test code)"],
    ),
    "torch of a number, numpy's copy": (
        "def activation(x):\n    y = x.copy()\n    return 1.5 * torch.tanh(-2.37) + torch.cos(y)\n",
        ["`.copy()` of a tensor → `.clone()`", "`torch.tanh` of a number → `math.tanh`"],
    ),
    "torch.sigmoid of a number": (
        "def activation(x):\n"
        "    return 2 * torch.sigmoid(-10) + x / (1 + torch.sigmoid(3.0) * x * x)\n",
        ["`torch.sigmoid` of a number → `0.5 * (1 + math.tanh(v / 2))`"],
    ),
    "from ... as F, a parenthesis too many": (
        "import torch\nfrom torch.nn.functional as F\n\ndef activation(x):\n"
        "    return torch.where(x > 1, F.elu(x), F.relu(x) + 0.1 * torch.sin(x)))\n",
        [
            "`from M as F` → `import M as F`",
            "dropped an unmatched `)` at the end of a line",
        ],
    ),
    "F imported with other names": (
        "from torch.nn.functional import F, sigmoid\ndef activation(x):\n"
        "    return F.gelu(x) * sigmoid(x)))\n",
        [
            "`from torch.nn.functional import F` → `import torch.nn.functional as F`",
            "dropped an unmatched `)` at the end of a line",
        ],
    ),
    "a parenthesis left open at the end of a complete line": (
        "def activation(x):\n    gate = torch.sigmoid(torch.where(x > 1, x * (1 + 0.5 * "
        "torch.sinc(2.5 * x)), torch.tanh(x))  # smooth\n\n    return x * gate\n",
        ["closed 1 `(` left open at the end of a line"],
    ),
    "bare pi": (
        "def activation(x):\n    return F.silu(x) + 0.1 * torch.sin(pi * x)\n",
        ["`pi` → `math.pi`"],
    ),
}


def _function(source: str) -> Any:
    scope: dict[str, Any] = {"torch": torch, "F": torch.nn.functional, "math": math}
    exec(compile(source, "<test>", "exec"), scope)
    return scope["activation"]


def _fails(source: str) -> bool:
    """Returns whether `source` fails validation or fails when run on a tensor."""
    if not isinstance(validate(source), Candidate):
        return True
    try:
        _function(source)(torch.linspace(-2, 2, 9))
    except Exception:
        return True
    return False


@pytest.mark.parametrize("name", list(SLIPS))
def test_a_slip_is_repaired_into_code_that_validates_and_runs(name: str) -> None:
    source, fixes = SLIPS[name]
    assert _fails(source)
    repaired = repair(source)
    assert sorted(repaired.fixes) == sorted(fixes)
    assert isinstance(validate(repaired.source), Candidate), validate(repaired.source)
    assert not _fails(repaired.source)


@pytest.mark.parametrize(
    "name",
    [n for n in SLIPS if any(w in n for w in ("if", "max", "math", "twice", "constant", "binds"))],
)
def test_a_repaired_function_computes_what_the_original_does_element_by_element(
    name: str,
) -> None:
    source, _ = SLIPS[name]
    original, repaired = _function(source), _function(repair(source).source)
    x = torch.linspace(-5, 5, 201, dtype=torch.float64)
    # The original works on one element at a time: a 0-d tensor makes its `if` a scalar test.
    expected = torch.stack([torch.as_tensor(original(v), dtype=torch.float64) for v in x])
    got = repaired(x)
    assert got.shape == x.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, expected)


def test_torch_sigmoid_of_a_number_becomes_its_value() -> None:
    source, _ = SLIPS["torch.sigmoid of a number"]
    x = torch.linspace(-5, 5, 201, dtype=torch.float64)
    expected = 2 * torch.sigmoid(torch.tensor(-10.0, dtype=torch.float64)) + x / (
        1 + torch.sigmoid(torch.tensor(3.0, dtype=torch.float64)) * x * x
    )
    torch.testing.assert_close(_function(repair(source).source)(x), expected)
    # Far past where exp overflows, the value is still exact.
    assert (
        _function(repair("def activation(x):\n    return x * torch.sigmoid(-800)\n").source)(
            torch.ones(1)
        ).item()
        == 0.0
    )


def test_code_that_validates_is_left_as_it_is() -> None:
    rng = random.Random(0)
    mutator = Mutator(rng)
    sources = [seeds.seed_source(name) for name in seeds.SEEDS]
    for _ in range(300):
        child = mutator.mutate(rng.choice(sources), rng.choice(sources))
        sources.append(child.source)
    for source in sources:
        assert isinstance(validate(source), Candidate), source
        assert repair(source).fixes == (), source
        assert repair(source).source == source


@pytest.mark.parametrize(
    "source",
    [
        # The name is the author's own: not a slip.
        "def activation(x):\n    sigmoid = torch.sigmoid\n    return sigmoid(x)\n",
        "from torch import sigmoid\ndef activation(x):\n    return sigmoid(x) * x\n",
        # Python's if on numbers, max of numbers: fine as written.
        "def activation(x):\n    a = 0.5\n    if a > 0:\n        return x * a\n    return x\n",
        "def activation(x):\n    return x * max(0.5, 0.25)\n",
        # Not a function minact knows: validation names it.
        "def activation(x):\n    return frobnicate(x)\n",
        "def activation(x):\n    return eval('x')\n",
        # A branch whose local is read elsewhere too, or that does more than assign and
        # return: computing it before the choice could change what the function does.
        "def activation(x):\n    if x > 0:\n        y = x\n        return y\n"
        "    y = -x\n    return y\n",
        "def activation(x):\n    if x > 0:\n        x = 2 * x\n        return x\n    return -x\n",
        "def activation(x):\n    if x > 0:\n        y = x\n        y += 1\n"
        "        return y\n    return -x\n",
        # No function at all.
        "x = 1\n",
        # A top-level statement that binds what the function reads, but not as a constant.
        "for i in range(3):\n    A = i\ndef activation(x):\n    return A * x\n",
        "A = activation\ndef activation(x):\n    return A(x)\n",
        # What rebinds the function after it is what Python calls: dropping it as example
        # code would score the def instead of F.gelu or the class.
        "import torch.nn.functional as F\ndef activation(x):\n    return x\nactivation = F.gelu\n",
        "def activation(x):\n    return x\nclass activation:\n    pass\n",
        # A syntax slip mended, another left: nothing is changed, validation names the error.
        "from torch.nn.functional as F\ndef activation(x):\n    return F.gelu(x) *\n",
        # A parenthesis too many that is not at the end of its line.
        "def activation(x):\n    return torch.sin(x)) + x\n",
        # A line left open mid-expression (a reply cut short), or whose `(` encloses a
        # string or another bracket: where it would close is not guessed.
        "def activation(x):\n    return torch.where(x > 0, x, x /\n",
        "def activation(x):\n    return torch.where(x > 0,\n",
        "def activation(x):\n    return torch.sum(x[0:1] + x\n",
        "def activation(x):\n    return F.gelu(x) + torch.sin(x, ')'\n",
        # The next line goes on with the expression: closed at the end of the first line,
        # `y` would be x + 1 and the rest a statement that computes nothing.
        "def activation(x):\n    y = (x + 1\n    - x * 0.5\n    return y\n",
        "def activation(x):\n    y = (x + 1\n\n    # half\n    * 0.5\n    return y\n",
        "def activation(x):\n    y = torch.sigmoid(x\n    .abs()\n    return y\n",
    ],
)
def test_what_is_not_a_known_slip_is_not_touched(source: str) -> None:
    assert repair(source).fixes == ()
    assert repair(source).source == source


@pytest.mark.parametrize(
    "source",
    [
        "def activation(x):\n    return " + "(" * 5000 + "x" + ")" * 5000 + "\n",
        "def activation(x):\n    return " + "-" * 100_000 + "x\n",
        "def activation(x):\n    return sigmoid(" + "-" * 7000 + "x)\n",
        "def activation(x:\n",
        "\x00\x01 not python",
        "def activation(x):\n    return sigmoid(x)\n" + "#" * 40_000,
    ],
)
def test_hostile_input_is_returned_unchanged_for_validation_to_refuse(source: str) -> None:
    repaired = repair(source)
    assert repaired.fixes == () and repaired.source == source
    assert not isinstance(validate(source), Candidate)


# A 400-digit int in a branch: float() of it raised OverflowError out of repair, and the
# search that called it died. Left as it is, validation refuses it.
HUGE_BRANCH = "def activation(x):\n    return " + "9" * 400 + " if x > 0 else x\n"


def test_a_huge_int_in_a_branch_is_left_for_validation_to_refuse() -> None:
    repaired = repair(HUGE_BRANCH)
    assert "9" * 400 in repaired.source
    result = validate(repaired.source)
    assert not isinstance(result, Candidate) and "too large" in result.reason


def test_ints_past_the_validators_limit_are_not_made_floats() -> None:
    # float() would accept these, and make a literal validation refuses into one it takes.
    source = "def activation(x):\n    return x if x > 0 else -" + "9" * 30 + "\n"
    assert not isinstance(validate(repair(source).source), Candidate)


def test_a_rule_that_fails_leaves_the_source_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, tree: object) -> list[str]:
        raise KeyError("a bug in a rule")

    monkeypatch.setattr("minact.validate.repair._Repairer.run", broken)
    source = "def activation(x):\n    return sigmoid(x)\n"
    assert repair(source) == Repaired(source, ())


def _reversed_chain(n: int) -> str:
    """Returns a function whose locals are assigned in the reverse of the order they are
    computed in (`v3 = v2`, `v2 = v1`, `v1 = x`): a fixed point over them took n passes."""
    body = "".join(f"    v{i} = v{i - 1}\n" for i in range(n, 0, -1)).replace("v0\n", "x\n")
    return f"def activation(x):\n{body}    return v{n} if v{n} > 0 else x\n"


def test_a_source_past_the_node_limit_is_returned_unchanged() -> None:
    source = _reversed_chain(510)  # ~8,000 characters
    assert len(source) <= MAX_SOURCE_CHARS
    assert sum(1 for _ in ast.walk(ast.parse(source))) > MAX_NODES
    assert repair(source) == Repaired(source, ())


def test_locals_computed_from_a_tensor_are_found_in_any_order() -> None:
    source = _reversed_chain(250)
    assert sum(1 for _ in ast.walk(ast.parse(source))) <= MAX_NODES
    # (Not valid code, since each local is read before it is assigned: the repair need
    # not know that, and validation says so.)
    assert "torch.where(v250 > 0, v250, x)" in repair(source).source


def _never_raises(source: str) -> None:
    repaired = repair(source)
    assert isinstance(repaired.source, str)
    assert repaired.fixes or repaired.source == source


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(source: str) -> None:
    _never_raises(source)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["", "def activation(x):\n    ", "def activation(x):\n    return ", "import torch\n"]
    ),
    st.lists(
        st.sampled_from([*FRAGMENTS, "9" * 400, " if x > 0 else ", "max(x, "]), max_size=40
    ).map("".join),
)
@example("def activation(x):\n    return ", "9" * 400 + " if x > 0 else x")
def test_code_fragments_never_raise(prefix: str, fragments: str) -> None:
    _never_raises(prefix + fragments)


@pytest.mark.parametrize("blank", ["\n", " \n", "\r\n", "\t\n"])
def test_the_import_repair_reads_one_line_at_a_time(blank: str) -> None:
    # A hostile reply runs through repair in the main process. A pattern whose leading
    # blanks may span lines (`^\s*` under re.M) runs, from each line start, over every
    # blank line after it: quadratic, seconds for a reply of MAX_TEXT_CHARS newlines. The
    # match must begin on the line of the import itself, whatever blank lines precede it.
    text = "def activation(x):\n" + blank * 50 + "    from torch.nn.functional as F\n"
    matches = list(tidy._FROM_AS.finditer(text))
    assert [m.group(3) for m in matches] == ["F"]
    assert "\n" not in matches[0].group(0)
    repaired = repair(text + "    return F.gelu(x)\n")
    assert "import torch.nn.functional as F" in repaired.source
