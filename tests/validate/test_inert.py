"""Tests for minact.validate.inert: what Python runs on import may not change the function.

minact scores the normal form of `activation`; Python, importing the file, also runs its
class bodies, the annotations and defaults of its defs and the value of `__all__`. A file
whose import patches torch (`class Patch: torch.tanh = torch.sin`) computes sin where minact
would score tanh, so it is refused; the inert parts `minact export` writes still validate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.candidate import Candidate, Rejection
from minact.cli import app
from minact.validate import validate
from tests.conftest import TINY_TASKS

HEADER = "import torch\nfrom torch import nn\n\n\n"
TANH = "def activation(x):\n    return torch.tanh(x)\n"
PATCH = "setattr(torch, 'tanh', torch.sin)"

HOSTILE = {
    "class-body-assigns-into-torch": f"class Patch:\n    torch.tanh = torch.sin\n\n\n{TANH}",
    "class-body-call": f"class Patch:\n    done = {PATCH}\n\n\n{TANH}",
    "class-annotation": f"class Patch:\n    done: {PATCH} = 1\n\n\n{TANH}",
    "class-statement": f"class Patch:\n    for i in range(1):\n        pass\n\n\n{TANH}",
    "class-base": f"class Patch({PATCH} or object):\n    pass\n\n\n{TANH}",
    "class-keyword": f"class Patch(nn.Module, metaclass=type):\n    pass\n\n\n{TANH}",
    "class-decorator": f"@torch.no_grad\nclass Patch:\n    pass\n\n\n{TANH}",
    "base-of-the-files-class": (
        "class Hook:\n    def __init_subclass__(cls):\n        torch.tanh = torch.sin\n\n\n"
        f"class Patch(Hook):\n    pass\n\n\n{TANH}"
    ),
    "subscript-of-the-files-class": (
        "class Hook:\n    def __class_getitem__(cls, item):\n        return item\n\n\n"
        f"class Patch:\n    x: Hook[int] = 0\n\n\n{TANH}"
    ),
    "method-default": f"class Patch:\n    def f(self, y={PATCH}):\n        pass\n\n\n{TANH}",
    "method-decorator": (
        f"class Patch:\n    @torch.jit.script\n    def f(self):\n        pass\n\n\n{TANH}"
    ),
    "method-annotation": f"class Patch:\n    def f(self) -> {PATCH}:\n        pass\n\n\n{TANH}",
    "activation-annotation": f"def activation(x: {PATCH}):\n    return torch.tanh(x)\n",
    "activation-return-annotation": f"def activation(x) -> {PATCH}:\n    return torch.tanh(x)\n",
    "all": f"__all__ = [{PATCH}]\n\n\n{TANH}",
}

INERT = {
    "module-wrapper": (
        f"{TANH}\n\nclass Tanh(nn.Module):\n"
        '    """Tanh as a layer."""\n\n'
        "    inplace: bool = False\n"
        "    scale = 1.0\n\n"
        "    def forward(self, x: torch.Tensor, y: int | None = None) -> torch.Tensor:\n"
        "        torch.tanh = torch.sin  # a body runs only when called\n"
        "        return activation(x)\n\n"
        "    @staticmethod\n"
        "    def extra_repr() -> str:\n"
        "        return ''\n"
    ),
    "annotated-activation": "def activation(x: torch.Tensor) -> torch.Tensor:\n"
    "    return torch.tanh(x)\n",
    "all": f'__all__ = ("activation",)\n\n\n{TANH}',
}


@pytest.mark.parametrize("body", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_file_whose_import_runs_code_is_refused(body: str) -> None:
    result = validate(HEADER + body)
    assert isinstance(result, Rejection), result
    assert "runs when Python imports the file" in result.reason


@pytest.mark.parametrize("body", list(INERT.values()), ids=list(INERT))
def test_inert_parts_around_the_function_keep_its_code_hash(body: str) -> None:
    plain, wrapped = validate(HEADER + TANH), validate(HEADER + body)
    assert isinstance(plain, Candidate) and isinstance(wrapped, Candidate), wrapped
    assert wrapped.code_hash == plain.code_hash


def test_score_does_not_rank_a_file_as_code_its_import_replaces(tmp_path: Path) -> None:
    # Imported by Python, this file's activation is sin; minact would have scored tanh.
    patch = tmp_path / "patch.py"
    patch.write_text(HEADER + HOSTILE["class-body-assigns-into-torch"])
    args = ["score", str(patch), "--json", "--tasks", str(TINY_TASKS)]
    result = CliRunner().invoke(app, [*args, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    by = {c["name"]: c for c in json.loads(result.stdout)["candidates"]}
    assert by["patch"]["status"] == "invalid" and by["patch"]["fitness"] is None
