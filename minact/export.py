"""A found activation as a standalone Python module: the function and an nn.Module.

The exported file needs only torch. The function body is the candidate's normalised
source (what was evaluated), with `activation` renamed; `activation` stays bound to it, so
`minact score FILE` accepts the file and finds the same code hash.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re

from minact.untrusted import printable_lines

__all__ = ["NAME_RULE", "class_name", "module_text", "valid_name"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# Names the module binds or the layer's forward reads (its `self` and `x`), and Python's
# builtins, which the function may call itself (`abs(x)` would call the export).
_TAKEN = frozenset({"torch", "F", "math", "nn", "self", "x"}) | frozenset(dir(builtins))
NAME_RULE = "a Python identifier, not a keyword, a builtin, torch, F, math, nn, self or x"


def valid_name(name: str) -> bool:
    """Returns whether `name` can name the exported function (NAME_RULE): one that
    starts with `__` would be mangled inside the layer's class."""
    return (
        bool(_IDENT.match(name))
        and not keyword.iskeyword(name)
        and name not in _TAKEN
        and not name.startswith("__")
    )


def class_name(name: str) -> str:
    """Returns the nn.Module's name for a function name: gelu_sine -> GeluSine."""
    parts = [p for p in name.split("_") if p]
    camel = "".join(p[:1].upper() + p[1:] for p in parts) or "Activation"
    return camel if camel != name else camel + "Module"


def module_text(source: str, name: str, docstring: str) -> str:
    """Returns the module: imports, `def name(x)`, and an nn.Module calling it."""
    tree = ast.parse(source)
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    func.name = name
    func.args.args[0].annotation = ast.Name("torch.Tensor", ast.Load())
    func.returns = ast.Name("torch.Tensor", ast.Load())
    body = ast.unparse(func)
    cls = class_name(name)
    # `minact score FILE` looks for `activation`; bind it when the function has another name.
    alias = "" if name == "activation" else f"activation = {name}\n\n\n"
    # The docstring quotes run files (a path, a proposal's note): a control character or a
    # backslash (`C:\Users`, `\N{`) would stop the module from compiling.
    doc = printable_lines(docstring)
    doc = doc.replace('"""', "'''").replace("\\", "\\\\")
    return (
        f'"""{doc}\n"""\n\n'
        "import math\n\n"
        "import torch\n"
        "import torch.nn.functional as F\n"
        "from torch import nn\n\n"
        f'__all__ = ["{cls}", "{name}"]\n\n\n'
        f"{body}\n\n\n"
        f"{alias}"
        f"class {cls}(nn.Module):\n"
        f'    """`{name}` as a layer: applied elementwise, no parameters."""\n\n'
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
        f"        return {name}(x)\n"
    )
