"""Prompts for the LLM, and its replies back to candidate source: text in, text out.

The prompt states the lab (families, what out of distribution means here, how fitness
is scored), the candidate contract, the parent's code with its per-task scores, a few
top and diverse candidates, and recent failures with their reasons. It is trimmed to a
character budget, least useful parts first, because small local models have small
contexts. A reply may hold one fenced python block with `def activation(x)`, or
SEARCH/REPLACE blocks against the parent; anything else is a ParseFailure with a reason.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

from minact.lab.task import Lab, Task
from minact.search.population import Failure, Member

__all__ = ["ParseFailure", "build_messages", "parse_reply"]

Message = dict[str, str]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_DIFF = re.compile(
    r"<{5,9} ?SEARCH[^\n]*\n(.*?)\n?={5,9}[^\n]*\n(.*?)\n?>{5,9} ?REPLACE", re.DOTALL
)
_CODE_LANGS = {"", "python", "py", "python3"}
# A lab with more tasks is summarised: a few examples per family, the extreme per-task scores
# (the default lab has 100 generated tasks; listing them all would fill the prompt budget).
_LISTED = 12
_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A reply that holds no usable candidate, with the reason."""

    reason: str


def _contract(lab: Lab) -> str:
    lo, hi = lab.probe
    return (
        "Write `def activation(x)`: it takes a float tensor of any shape and returns a tensor "
        "of the same shape, dtype and device. It must be elementwise (output i depends only on "
        "input i: no reductions, sorting, indexing, shifting or batch statistics), finite with a "
        f"finite derivative for every input in [{lo:g}, {hi:g}] in float32, and cost at most "
        f"{lab.max_cost:g}x GELU in elementwise operations.\n"
        "Use only `torch`, `torch.nn.functional as F` and `math` (e.g. torch.sin, torch.cos, "
        "torch.exp, torch.tanh, torch.sigmoid, torch.sinc, torch.erf, torch.where, torch.clamp, "
        "F.gelu, F.silu, F.softplus, F.elu, math.pi). No other imports, no while loops (only "
        "`for i in range(N)` with N <= 64), no I/O, no names starting with '_', no in-place "
        "changes to x.\n"
        "Reply with ONE ```python code block holding the complete function, and nothing else "
        "matters. Alternatively, edit the parent with blocks of the form\n"
        "<<<<<<< SEARCH\n<exact lines of the parent>\n=======\n<new lines>\n>>>>>>> REPLACE"
    )


def _task_text(t: Task) -> str:
    if t.target is None:  # a graph or dataset task
        return t.describe()
    if t.kind == "set" and t.sets is not None:
        return (
            f"y = {t.sets.aggregate} of {t.target.source} over a set of {t.sets.size} "
            f"(tested on sets of {t.sets.test_size})"
        )
    if t.kind == "classification":
        return f"classify the sign of {t.target.source}"
    return f"y = {t.target.source}"


def _lab_text(lab: Lab) -> str:
    by_family: dict[str, list[str]] = {}
    for t in lab.tasks:
        by_family.setdefault(t.family, []).append(f"{t.name}: {_task_text(t)}")
    if len(lab.tasks) > _LISTED:
        families = "\n".join(
            f"- {f} ({len(items)} tasks), e.g. " + "; ".join(items[:_EXAMPLES])
            for f, items in by_family.items()
        )
    else:
        families = "\n".join(f"- {f}: " + "; ".join(items) for f, items in by_family.items())
    t0 = lab.tasks[0]
    train = ", ".join(
        f"{v} in [{lo:g}, {hi:g}]" for v, (lo, hi) in zip(t0.variables, t0.train, strict=True)
    )
    test = ", ".join(
        f"{v} in [{lo:g}, {hi:g}]" for v, (lo, hi) in zip(t0.variables, t0.test, strict=True)
    )
    return (
        "Each candidate activation is placed after every hidden layer of small MLPs "
        f"({t0.settings.depth} hidden layers of {t0.settings.width} units, Adam, "
        f"{t0.settings.steps} steps) that learn these regression tasks:\n{families}\n"
        f"The networks train on an inner box (e.g. {train}) and are scored OUT OF DISTRIBUTION, "
        f"on inputs outside it (e.g. {test}, minus the training box): the activation must help "
        "them extrapolate. Fitness = mean over tasks of log(OOD error / ReLU's OOD error); "
        "LOWER is better, 0 equals ReLU, negative beats it. Known good ideas add a periodic "
        "term to a standard activation (e.g. GELU(x) + 0.1*sin(x))."
    )


def _scores(m: Member) -> str:
    s = m.score
    if not s.ok or s.fitness is None:
        return f"failed: {s.status}: {s.reason}"
    if len(s.tasks) > _LISTED:
        by_ratio = sorted(s.tasks.items(), key=lambda kv: kv[1].log_ratio)
        best, worst = by_ratio[:_EXAMPLES], by_ratio[::-1][:_EXAMPLES]
        text = ", ".join(f"{name} {t.log_ratio:+.2f}" for name, t in worst)
        text += "; best: " + ", ".join(f"{name} {t.log_ratio:+.2f}" for name, t in best)
        return f"fitness {s.fitness:+.3f} (log-ratio over {len(s.tasks)} tasks; worst: {text})"
    per_task = ", ".join(f"{name} {t.log_ratio:+.2f}" for name, t in s.tasks.items())
    return f"fitness {s.fitness:+.3f} (per task log-ratio: {per_task})"


def _block(title: str, m: Member) -> str:
    return f"{title} — {_scores(m)}\n```python\n{m.score.source}\n```"


def build_messages(
    lab: Lab,
    parent: Member,
    top: list[Member],
    diverse: list[Member],
    failures: list[Failure],
    max_chars: int = 8000,
) -> list[Message]:
    """Returns the chat messages asking for a child of `parent`, within `max_chars`."""
    system = (
        "You are an expert in neural network design who invents activation functions as "
        "short, correct PyTorch code.\n\n" + _lab_text(lab) + "\n\n" + _contract(lab)
    )
    head = _block("PARENT (improve this one)", parent)
    ask = (
        "Propose ONE new activation function that should beat the parent's fitness. Think about "
        "which tasks it loses on. Reply with the complete function in one ```python block."
    )
    optional: list[str] = []  # most useful first; trimmed from the end
    optional += [_block(f"TOP #{i + 1}", m) for i, m in enumerate(top)]
    optional += [
        f"RECENT FAILURE ({f.kind}): {f.reason}\n```python\n{f.source[:600]}\n```"
        for f in reversed(failures)
    ]
    optional += [_block("ANOTHER CANDIDATE", m) for m in diverse]
    budget = max_chars - len(system) - len(head) - len(ask)
    kept: list[str] = []
    for part in optional:
        if len(part) + 2 <= budget:
            kept.append(part)
            budget -= len(part) + 2
    user = "\n\n".join([head, *kept, ask])
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _apply_diff(parent: str, blocks: list[tuple[str, str]]) -> str | ParseFailure:
    child = parent
    for i, (search, replace) in enumerate(blocks, start=1):
        if search in child:
            child = child.replace(search, replace, 1)
            continue
        # Tolerate differences in trailing spaces and indentation width of whole lines.
        lines = [ln.strip() for ln in child.splitlines()]
        want = [ln.strip() for ln in search.splitlines() if ln.strip()]
        for start in range(len(lines)):
            window = [ln for ln in lines[start:] if ln][: len(want)]
            if window == want:
                break
        else:
            return ParseFailure(f"diff block {i}: the SEARCH text is not in the parent")
        child_lines = child.splitlines()
        end, matched = start, 0
        while matched < len(want):
            matched += bool(child_lines[end].strip())
            end += 1
        indent = re.match(r"\s*", child_lines[start]).group(0)  # type: ignore[union-attr]
        new = [indent + ln.strip() if ln.strip() else "" for ln in replace.splitlines()]
        child = "\n".join(child_lines[:start] + new + child_lines[end:])
    return child


_ONE_DEF = re.compile(r"^def ([A-Za-z_][A-Za-z0-9_]*)\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", re.M)


def _renamed_block(text: str) -> str | None:
    """Returns the last python block with exactly one one-argument def, renamed to activation."""
    for lang, code in reversed(_FENCE.findall(text)):
        if lang.lower() not in _CODE_LANGS:
            continue
        defs = _ONE_DEF.findall(code)
        if len(defs) == 1 and code.count("def ") == 1:
            # Models often name the function after what it does (`def gelu_sine(x)`).
            name = defs[0]
            return re.sub(rf"\b{name}\b", "activation", str(code)).strip("\n") + "\n"
    return None


def parse_reply(text: str, parent_source: str) -> str | ParseFailure:
    """Returns the candidate source in an LLM reply, or a ParseFailure saying why not."""
    if not text.strip():
        return ParseFailure("empty reply")
    diffs: list[tuple[str, str]] = _DIFF.findall(text)
    if diffs:
        return _apply_diff(parent_source, diffs)
    blocks: list[str] = [
        str(code)
        for lang, code in _FENCE.findall(text)
        if lang.lower() in _CODE_LANGS and "def activation" in code
    ]
    if blocks:
        return blocks[-1].strip("\n") + "\n"  # the last block is the answer, not the quote
    renamed = _renamed_block(text)
    if renamed is not None:
        return renamed
    at = text.find("def activation")
    if at < 0:
        return ParseFailure("no ```python block with `def activation(x)` in the reply")
    # Unfenced code: from the imports before the def, trimmed until it parses.
    start = max(text.rfind("\nimport ", 0, at), text.rfind("\nfrom ", 0, at), -1) + 1
    if start == 0 and not text.startswith(("import ", "from ")):
        start = at
    lines = text[start:].splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if "def activation" in candidate and _parses(candidate):
            return candidate + "\n"
    return ParseFailure("the reply's `def activation` is not valid Python")
