"""Prompts for the LLM: the lab, the parent and what is already known, as chat text.

The prompt states the lab (families, what out of distribution means here, how fitness
is scored), the candidate contract, the parent's code with its per-task scores, a few
top and diverse candidates, and recent failures with their reasons. It is trimmed to a
character budget, least useful parts first, because small local models have small
contexts. minact.search.reply reads the answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from minact.lab.task import Lab, Task
from minact.search import novelty
from minact.search.population import Failure, Member

__all__ = [
    "STYLES",
    "Prompt",
    "build_messages",
    "build_prompt",
    "conversation_room",
    "fit_to_context",
]

Message = dict[str, str]

# A lab with more tasks is summarised: a few examples per family, the extreme per-task scores
# (the default lab has 100 generated tasks; listing them all would fill the prompt budget).
_LISTED = 12
_EXAMPLES = 3


def _contract(lab: Lab) -> str:
    lo, hi = lab.probe
    return (
        "Write `def activation(x)`: it takes a float tensor of any shape (always finite: no "
        "NaN or infinity checks needed) and returns a tensor of the same shape, dtype and "
        "device. It must be elementwise (output i depends only on "
        "input i: no reductions, sorting, indexing, shifting or batch statistics), finite with a "
        f"finite derivative for every input in [{lo:g}, {hi:g}] in float32, and cost at most "
        f"{lab.max_cost:g}x GELU in elementwise operations.\n"
        "Use only `torch`, `torch.nn.functional as F` and `math` (e.g. torch.sin, torch.cos, "
        "torch.exp, torch.tanh, torch.sigmoid, torch.sinc, torch.erf, torch.where, torch.clamp, "
        "F.gelu, F.silu, F.softplus, F.elu, math.pi); `math` functions take numbers, not "
        "tensors: use them for constants only. No other imports, no while loops (only "
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
        f"them extrapolate. {_fitness_text(lab)} Known good ideas add a periodic "
        "term to a standard activation (e.g. GELU(x) + 0.1*sin(x))."
    )


def _reference_name(lab: Lab) -> str:
    """Returns the reference as the prompt names it ("ReLU" for the default)."""
    return "ReLU" if lab.reference == "relu" else lab.reference


def _fitness_text(lab: Lab) -> str:
    """Returns what the lab's fitness is, as a model should read the numbers it is shown:
    the mean log-ratio against the lab's reference, or under "mean_ood_mse" the mean OOD
    MSE (told as a log-ratio against ReLU, a model would read 37.2 as far worse than ReLU,
    which scores about that itself)."""
    ref = _reference_name(lab)
    if lab.fitness == "mean_ood_mse":
        return (
            "Fitness = mean over tasks of the OOD mean squared error (standardised targets); "
            f"LOWER is better ({ref} has no fixed score: compare with its own)."
        )
    return (
        f"Fitness = mean over tasks of log(OOD error / {ref}'s OOD error); "
        f"LOWER is better, 0 equals {ref}, negative beats it."
    )


def _scores(m: Member, lab: Lab) -> str:
    s = m.score
    if s.ok and s.fitness is None:  # a proposal built before the scores (search.opening)
        return "a built-in activation (its scores are not known yet)"
    if not s.ok or s.fitness is None:
        return f"failed: {s.status}: {s.reason}"
    # In the lab's order, not the order the scores were stored in: a score read back from
    # the event log (a resume) lists its tasks by name, and the prompt, so the reply, differed.
    place = {t.name: i for i, t in enumerate(lab.tasks)}
    tasks = sorted(s.tasks.items(), key=lambda kv: (place.get(kv[0], len(place)), kv[0]))
    # The per-task numbers stay log-ratios (comparable across tasks): said so beside an MSE.
    mse = (
        f"a mean OOD MSE; against {_reference_name(lab)}, " if lab.fitness == "mean_ood_mse" else ""
    )
    if len(tasks) > _LISTED:
        by_ratio = sorted(tasks, key=lambda kv: kv[1].log_ratio)
        best, worst = by_ratio[:_EXAMPLES], by_ratio[::-1][:_EXAMPLES]
        text = ", ".join(f"{name} {t.log_ratio:+.2f}" for name, t in worst)
        text += "; best: " + ", ".join(f"{name} {t.log_ratio:+.2f}" for name, t in best)
        return f"fitness {s.fitness:+.3f} ({mse}log-ratio over {len(tasks)} tasks; worst: {text})"
    per_task = ", ".join(f"{name} {t.log_ratio:+.2f}" for name, t in tasks)
    return f"fitness {s.fitness:+.3f} ({mse}per task log-ratio: {per_task})"


def _block(title: str, m: Member, lab: Lab) -> str:
    return f"{title} — {_scores(m, lab)}\n```python\n{m.score.source}\n```"


CHARS_PER_TOKEN = 3.2  # measured 3.4-3.5 on these prompts (SmolLM2, Qwen); a little margin
# A follow-up adds the reply shown back (at most 600 characters and its code fence) and the
# message saying why it gave nothing new (at most about 580 with the longest hint), and the
# chat template wraps each of the two messages in a few tokens.
FOLLOW_UP_CHARS = 1300
MIN_PROMPT_CHARS = 1500  # below this the prompt cannot state the task and the contract


def conversation_room(context: int, max_tokens: int) -> int:
    """Returns how many characters of messages a context of `context` tokens holds."""
    return max(0, int(CHARS_PER_TOKEN * (context - max_tokens)))


def fit_to_context(asked: int, context: int, max_tokens: int, follow_ups: int) -> tuple[int, str]:
    """Returns the prompt's character budget within a context of `context` tokens, and a note.

    The context must also hold the reply (`max_tokens`) and, for each follow-up, a reply
    shown back with the reason it was refused.
    """
    room = conversation_room(context, max_tokens) - follow_ups * FOLLOW_UP_CHARS
    if room >= asked:
        return asked, f"{asked} characters fit the model's {context}-token context"
    fitted = max(MIN_PROMPT_CHARS, room)
    note = (
        f"cut from {asked} to {fitted} characters to fit the model's {context}-token context "
        f"with {max_tokens} reply tokens and {follow_ups} follow-ups"
    )
    if room < MIN_PROMPT_CHARS:
        note += "; it may still not fit: lower --max-tokens or --follow-ups"
    return fitted, note


# Instructions a proposal may draw (with its own generator), so that requests vary.
STYLES: dict[str, str] = {
    "periodic": "Add a small periodic term (sin, cos or sinc) to the parent, or change the one "
    "it has: its frequency, amplitude or what multiplies it.",
    "tail": "Change how the parent behaves for large |x| (its tails: linear, bounded, "
    "oscillating, growing), keeping its shape near 0.",
    "gate": "Gate: multiply part of the parent by a smooth gate (sigmoid, erf, tanh of a scaled "
    "x), or switch between two pieces with torch.where.",
    "compose": "Compose: feed one function into another, or combine the parent with the "
    "INSPIRATION or another candidate shown above.",
    "simplify": "Simplify: keep the parent's idea with fewer operations or constants, then "
    "change one thing.",
}


@dataclass(frozen=True, slots=True)
class Prompt:
    """The chat messages of a request, and what the character budget left out.

    Attributes:
        messages: the system and user messages.
        cut: {section: items left out} for the sections that did not fit.
    """

    messages: list[Message]
    cut: dict[str, int]


def _failure_line(f: Failure) -> str:
    line = f"RECENT FAILURE ({f.kind}): {f.reason[:300]}"
    if f.source.lstrip().startswith(("def ", "import ", "from ")):
        line += f" — in: {novelty.expression(f.source)}"
    return line


def _scored_list(catalogue: list[Member]) -> Iterator[str]:
    # Written as read: a line parses its member's source, the catalogue holds every member
    # of the run, and only the first few dozen lines fit the budget (at 2000 members,
    # writing them all took 0.24 s per prompt; bench/scale.py).
    return (f"- {novelty.label(m)}" for m in catalogue)


def build_prompt(
    lab: Lab,
    parent: Member,
    top: list[Member],
    diverse: list[Member],
    failures: list[Failure],
    max_chars: int = 8000,
    *,
    catalogue: list[Member] | None = None,
    style: str | None = None,
    inspiration: Member | None = None,
) -> Prompt:
    """Returns the messages asking for a child of `parent` within `max_chars`, and the cuts.

    `catalogue` lists the other scored functions, one line each, so that the model does not
    write them again; `style` is a key of STYLES.
    """
    system = (
        "You are an expert in neural network design who invents activation functions as "
        "short, correct PyTorch code.\n\n" + _lab_text(lab) + "\n\n" + _contract(lab)
    )
    head = _block("PARENT (improve this one)", parent, lab)
    # Naming the parent's expression here was measured (bench/llm.py, 3 seeds): a 0.5B model
    # then copied the parent in most replies, and its yield fell from 0.53 to 0.26 per call.
    ask = (
        "Propose ONE new activation function that should beat the parent's fitness. Think about "
        "which tasks it loses on."
    )
    if catalogue is not None:
        ask += " It must differ from every function shown here: a copy is wasted."
    ask_end = (
        " Keep it short (a single return expression is best) and reply with the complete "
        "function in one ```python block."
    )
    cut: dict[str, int] = {}
    if style is not None:
        if len(system) + len(head) + len(ask) + len(STYLES[style]) + len(ask_end) > max_chars:
            cut["instruction"] = 1  # the essentials first: the lab, the contract, the parent
        else:
            ask += " " + STYLES[style]
    ask += ask_end
    over = len(system) + len(head) + len(ask) + 4 - max_chars
    if over > 0:
        cut["characters over the budget"] = over
    # Sections, most useful first; each is trimmed item by item from its end. A section is
    # (name, its items, how many, header): the scored list's items are written as read.
    sections: list[tuple[str, Iterable[str], int, str]] = [
        ("top", [_block(f"TOP #{i + 1}", m, lab) for i, m in enumerate(top)], len(top), "")
    ]
    if catalogue:
        header = "ALREADY SCORED in this run (do not write any of these again):"
        sections.append(("scored list", _scored_list(catalogue), len(catalogue), header))
    if inspiration is not None:
        sections.append(("inspiration", [_block("INSPIRATION", inspiration, lab)], 1, ""))
    # One line each: small models copy whatever code they are shown, broken code included.
    failed = [_failure_line(f) for f in reversed(failures)]
    sections.append(("failures", failed, len(failed), ""))
    others = [_block("ANOTHER CANDIDATE", m, lab) for m in diverse]
    sections.append(("other candidates", others, len(others), ""))
    budget = max_chars - len(system) - len(head) - len(ask) - 4
    kept: list[str] = []
    for name, items, count, header in sections:
        lines: list[str] = []
        cost = len(header) + 1 if header else 0
        for n, item in enumerate(items):
            sep = 1 if header else 2  # list lines join with one newline, blocks with two
            if cost + len(item) + sep > budget:
                cut[name] = count - n
                break
            lines.append(item)
            cost += len(item) + sep
        if lines:
            kept.append("\n".join([header, *lines]) if header else "\n\n".join(lines))
            budget -= cost + 2
    user = "\n\n".join([head, *kept, ask])
    return Prompt([{"role": "system", "content": system}, {"role": "user", "content": user}], cut)


def build_messages(
    lab: Lab,
    parent: Member,
    top: list[Member],
    diverse: list[Member],
    failures: list[Failure],
    max_chars: int = 8000,
) -> list[Message]:
    """Returns the chat messages asking for a child of `parent`, within `max_chars`."""
    return build_prompt(lab, parent, top, diverse, failures, max_chars).messages
