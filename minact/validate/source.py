"""Static validation of candidate source: allow-listed AST in, normalised Candidate out.

Nothing here executes candidate code. The checks are an allow-list, not a deny-list:
every statement, expression, name, attribute and keyword must be one minact knows.
Passing them does not make code safe to run in-process (that is the worker's job,
see evaluate.py); it keeps the obvious escapes and most mistakes out cheaply, and
gives the author (often an LLM) a reason it can act on.

The normalised source is `ast.unparse` of the function with canonical module names
(`torch`, `F` for torch.nn.functional, `math`), and without imports, docstrings,
comments and annotations, so formatting never changes `code_hash`.

Size limits apply to that code, what is hashed and run (MAX_SOURCE_CHARS, MAX_NODES):
comments, docstrings and what `minact export` writes around the function do not count
against them. The text as given has limits of its own, generous ones (MAX_TEXT_CHARS,
MAX_TEXT_NODES), which only bound the work of reading it.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize
import warnings

from minact.candidate import Candidate, Hash, Rejection
from minact.validate import primitives
from minact.validate.inert import check_all, check_annotations, check_class
from minact.validate.limits import MAX_LOOP_ITERATIONS, ValidationError
from minact.validate.normalise import Normaliser, is_docstring
from minact.validate.numeric import check_numeric

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_NODES",
    "MAX_SOURCE_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TEXT_NODES",
    "ValidationError",
    "code_hash",
    "decode_source",
    "validate",
]

MAX_SOURCE_CHARS = 8000  # characters of the normalised function: what is hashed and run
MAX_NODES = 1500  # syntax nodes of the normalised function
MAX_TEXT_CHARS = 32_000  # characters of the text as given, comments and docstrings included
MAX_TEXT_NODES = 4 * MAX_NODES  # syntax nodes of the text as given (imports, docstrings, ...)
MAX_DEPTH = 48  # nesting of AST nodes; deeper sources are refused before recursion hurts

# The names the worker binds. They need no import, so a normalised source validates to
# itself, and no local may take one (normalising would rename a module onto it).
_CANONICAL = {"torch": "torch", "F": "F", "math": "math"}


def code_hash(normalised_source: str) -> Hash:
    """Returns the sha256 hex digest of a normalised source text."""
    return Hash(hashlib.sha256(normalised_source.encode("utf-8")).hexdigest())


def decode_source(data: bytes) -> str | Rejection:
    """Returns `data` decoded as UTF-8, or a Rejection saying why it is not text.

    A file may declare its encoding in its first two lines (PEP 263, `# coding: utf-7`),
    and Python reads it in that encoding on import. Where that reading differs from the
    UTF-8 text (`# +AAo-return torch.sin(x)` is a comment in UTF-8 and a line of code in
    UTF-7), minact would validate and score other code than Python runs, so the file is
    refused; a declaration under which both read alike (`utf-8`, or `latin-1` in an ASCII
    file) is fine.
    """
    if len(data) > 4 * MAX_TEXT_CHARS:
        return Rejection(f"source is {len(data)} bytes; the limit is {MAX_TEXT_CHARS} characters")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return Rejection(f"source is not UTF-8 text ({e.reason} at byte {e.start})")
    why = _declared_encoding_differs(data, text)
    return Rejection(why) if why else text


def _declared_encoding_differs(data: bytes, text: str) -> str:
    """Returns why Python would read `data` as other text than `text` (its UTF-8 reading)
    by the encoding it declares, or "" where it reads the same."""
    try:  # Python's own rules: a BOM, or a cookie in the first two lines
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:  # an unknown encoding, or one that contradicts the BOM
        return f"Python cannot read the source's encoding declaration: {e.msg}"
    if encoding in ("utf-8", "utf-8-sig"):
        return ""
    try:
        same = data.decode(encoding) == text
    except Exception:  # any codec's failure (LookupError, UnicodeError, ...): Python's too
        same = False
    if same:
        return ""
    return (
        f"the source declares the encoding {encoding!r}, in which Python reads other text "
        "than its UTF-8 text; save it as UTF-8 without that declaration"
    )


def validate(source: str, *, name: str = "", parent: Hash | None = None) -> Candidate | Rejection:
    """Returns a normalised Candidate for `source`, or a Rejection with the reason."""
    try:
        normalised = _normalise(source)
    except ValidationError as e:
        return Rejection(str(e), name=name)
    return Candidate(normalised, code_hash(normalised), name=name, parent=parent)


def _normalise(source: str) -> str:
    if len(source) > MAX_TEXT_CHARS:
        raise ValidationError(f"source is {len(source)} characters; the limit is {MAX_TEXT_CHARS}")
    nul = source.find("\0")
    if nul >= 0:  # Python's parser says only "null bytes", at no line
        line = source.count("\n", 0, nul) + 1
        raise ValidationError(f"line {line}: source contains a NUL byte at offset {nul}")
    try:
        with warnings.catch_warnings():  # e.g. "\s" in a docstring: same verdict under -W error
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except SyntaxError as e:
        raise ValidationError(f"syntax error at line {e.lineno}: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise ValidationError(f"source cannot be parsed: {type(e).__name__}: {e}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_TEXT_NODES:
        raise ValidationError(f"source has {nodes} syntax nodes; the limit is {MAX_TEXT_NODES}")
    _check_depth(tree, 0)
    aliases, func = _split_module(tree)
    module = Normaliser(aliases, func).run()
    normal_def = module.body[0]
    assert isinstance(normal_def, ast.FunctionDef)
    nodes = sum(1 for _ in ast.walk(module))
    if nodes > MAX_NODES:
        raise ValidationError(f"the function has {nodes} syntax nodes; the limit is {MAX_NODES}")
    check_numeric(normal_def)
    normalised = ast.unparse(ast.fix_missing_locations(module))
    if len(normalised) > MAX_SOURCE_CHARS:
        raise ValidationError(
            f"the function is {len(normalised)} characters without comments and docstrings; "
            f"the limit is {MAX_SOURCE_CHARS}"
        )
    try:  # compiling runs nothing; it catches what parsing does not, e.g. `break` outside a loop
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(normalised, "<candidate>", "exec", dont_inherit=True)
    except SyntaxError as e:
        raise ValidationError(f"activation does not compile: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise ValidationError(f"activation does not compile: {type(e).__name__}: {e}") from None
    return normalised


def _check_depth(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValidationError(f"expressions are nested more than {MAX_DEPTH} levels deep")
    for child in ast.iter_child_nodes(node):
        _check_depth(child, depth + 1)


def _is_main_guard(stmt: ast.stmt) -> bool:
    # `if __name__ == "__main__":` demo code never runs in the worker, so it is dropped.
    if not isinstance(stmt, ast.If) or stmt.orelse:
        return False
    t = stmt.test
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.left, ast.Name)
        and t.left.id == "__name__"
        and len(t.ops) == 1
        and isinstance(t.ops[0], ast.Eq)
        and isinstance(t.comparators[0], ast.Constant)
        and t.comparators[0].value == "__main__"
    )


def _import_aliases(stmt: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """Returns {local name: canonical dotted path} for an allowed import statement."""
    out: dict[str, str] = {}
    if isinstance(stmt, ast.Import):
        for a in stmt.names:
            _check_module(a.name)
            if a.asname:
                out[a.asname] = primitives.canonical(a.name)
            else:  # `import torch.nn.functional` binds `torch`
                top = a.name.split(".")[0]
                out[top] = top
        return out
    if stmt.level or not stmt.module:
        raise ValidationError(f"line {stmt.lineno}: relative imports are not allowed")
    _check_module(stmt.module)
    for a in stmt.names:
        if a.name == "*":
            raise ValidationError(
                f"line {stmt.lineno}: `from {stmt.module} import *` is not allowed"
            )
        path = primitives.canonical(f"{stmt.module}.{a.name}")
        if path not in primitives.MODULES and path not in primitives.ALLOWED:
            raise ValidationError(
                f"line {stmt.lineno}: `{a.name}` from {stmt.module} is not an allowed function"
                + primitives.suggestion(path)
            )
        out[a.asname or a.name] = path
    return out


def _check_module(module: str) -> None:
    if primitives.canonical(module) not in primitives.MODULES:
        allowed = "torch, torch.nn, torch.nn.functional, torch.special, math"
        raise ValidationError(f"import of '{module}' is not allowed; only {allowed}")


def _split_module(tree: ast.Module) -> tuple[dict[str, str], ast.FunctionDef]:
    """Returns the import aliases and the `activation` def of a module.

    Besides imports and `def activation(x)`, a module may hold what `minact export` writes
    around the function: its one def under another name with `activation = name` after
    it, an `__all__` list, and classes. Those never run in the worker (only the normal
    form of the function does), and the function cannot reach them: a name it does not
    define is refused, and so is a class named as a module or import the function reads.
    What Python would run of them on import must be inert (minact.validate.inert).
    """
    aliases: dict[str, str] = dict(_CANONICAL)
    class_names = {s.name for s in tree.body if isinstance(s, ast.ClassDef)}
    funcs: list[ast.FunctionDef] = []
    bound: str | None = None  # `activation = name`
    others: dict[str, int] = {}  # names imports and classes bind at top level -> line
    classes: dict[str, int] = {}  # class names -> line, for _check_shadowing
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imported = _import_aliases(stmt)
            aliases.update(imported)
            others.update(dict.fromkeys(imported, stmt.lineno))
        elif isinstance(stmt, ast.FunctionDef):
            funcs.append(stmt)
        elif (i == 0 and is_docstring(stmt)) or _is_main_guard(stmt):
            continue
        elif isinstance(stmt, ast.ClassDef) and stmt.name != "activation":
            check_class(stmt, class_names)
            others[stmt.name] = classes[stmt.name] = stmt.lineno
            continue
        elif _assigns(stmt, "__all__"):
            assert isinstance(stmt, ast.Assign)
            check_all(stmt)
            continue
        elif (
            isinstance(stmt, ast.Assign)
            and _assigns(stmt, "activation")
            and isinstance(stmt.value, ast.Name)
        ):
            bound = _alias_target(stmt, stmt.value.id, bound, [f.name for f in funcs])
        else:
            raise ValidationError(
                f"line {stmt.lineno}: only imports and one `def activation(x)` may stand at "
                f"top level, found {type(stmt).__name__}"
            )
    names = [f.name for f in funcs]
    if names != [bound or "activation"]:
        found = ", ".join(names) if names else "none"
        raise ValidationError(f"expected exactly one function, `def activation(x)`; found: {found}")
    func = funcs[0]
    # Python would call what an import or class binds to either name, not the def (or,
    # bound before it, the def's own calls of its name): only the def may bind them.
    for taken in ("activation", func.name):
        if taken in others:
            raise ValidationError(
                f"line {others[taken]}: `{taken}` is bound by an import or class as well "
                "as by the def; only the function may have that name"
            )
    _check_shadowing(aliases, classes, func)
    # Evaluated when Python runs the def (defaults are refused with their own reason).
    check_annotations(func, class_names)
    func.name = "activation"
    # Imports at the top of the body (a common LLM habit) count as module imports.
    body = list(func.body)
    while body and (isinstance(body[0], (ast.Import, ast.ImportFrom)) or is_docstring(body[0])):
        stmt = body.pop(0)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            aliases.update(_import_aliases(stmt))
    # A for loop's `range(...)` is kept as written and runs as the builtin in the worker;
    # Python would call what an import bound to `range` (`from torch import sigmoid as range`).
    if "range" in aliases and any(isinstance(n, ast.For) for n in ast.walk(func)):
        raise ValidationError(
            f"an import binds `range` (to `{aliases['range']}`), which the function's for "
            "loop would call; import it under another name"
        )
    func.body = body or [ast.Pass()]
    return aliases, func


def _check_shadowing(
    aliases: dict[str, str], classes: dict[str, int], func: ast.FunctionDef
) -> None:
    """Raises ValidationError where a class, or the def under another name, takes a name
    the function reads as a module, an imported function or a builtin (`abs`, `max`).

    In Python the function would read the class (or itself) there; the normal form reads
    the module, so minact would score other code than the file's (`class torch: tanh = abs`).
    """
    read = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    # The builtins the function may call (`abs`, `max`, `range`, ...) are read as the
    # builtins in the normal form, so a class or def named like one is refused alike.
    names = {b: f"the builtin `{b}`" for b in primitives.BUILTINS}
    names.update({name: f"`{path}`" for name, path in aliases.items()})
    for name, line in classes.items():
        if name in names and name in read:
            raise ValidationError(
                f"line {line}: class `{name}` takes the name the function reads as "
                f"{names[name]}; rename the class"
            )
    if func.name in names and func.name in read:
        raise ValidationError(
            f"line {func.lineno}: `def {func.name}` takes the name of "
            f"{names[func.name]}; name the function `activation`"
        )


def _alias_target(stmt: ast.stmt, target: str, bound: str | None, defined: list[str]) -> str:
    """Returns the name `activation = target` binds; raises unless it names the module's
    function, defined above it, once, under another name."""
    where = f"line {stmt.lineno}: `activation = {target}`"
    if bound is not None:
        raise ValidationError(f"{where}: `activation` is already bound to {bound}")
    if "activation" in defined or target == "activation":
        raise ValidationError(f"{where}: the module already defines `activation`")
    if target not in defined:
        raise ValidationError(f"{where} must follow `def {target}(x)`, the module's function")
    return target


def _assigns(stmt: ast.stmt, name: str) -> bool:
    """Returns whether `stmt` is `name = ...` (one plain target)."""
    return (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and stmt.targets[0].id == name
    )
