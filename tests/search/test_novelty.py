"""Tests for minact.search.novelty and the prompt's budget: one-line expressions, copies found
before evaluation, verdicts that look only at what a proposal was shown, follow-up text,
and a prompt that fits the model's context."""

from __future__ import annotations

import asyncio

import pytest

from minact.candidate import Hash
from minact.lab.task import Lab
from minact.score import Score, TaskScore
from minact.search import llm, novelty
from minact.search.population import Member
from minact.search.prompt import FOLLOW_UP_CHARS, build_prompt, fit_to_context
from tests.llm_server import LLMServer

SINE = "def activation(y):\n    a = F.gelu(y)\n    b = 0.1 * torch.sin(y)\n    return a + b"


def _member(source: str, name: str, fitness: float | None = -0.3, behaviour: str = "") -> Member:
    tasks = {"sine": TaskScore(1.0, 0.1, 0.0, -0.4)}
    ok = fitness is not None
    score = Score(
        name,
        Hash(name * 8),
        source,
        "ok" if ok else "nonfinite",
        "" if ok else "f(x) is not finite",
        Hash(behaviour or name * 9),
        fitness,
        0.01 if ok else None,
        1.5 if ok else None,
        tasks if ok else {},
        1.0 if ok else None,
    )
    return Member(score, -1, None, "seed")


def test_expression_inlines_straight_line_code() -> None:
    assert novelty.expression(SINE) == "F.gelu(x) + 0.1 * torch.sin(x)"
    loop = "def activation(x):\n    for i in range(3):\n        x = x + 1\n    return x"
    assert novelty.expression(loop) == "for i in range(3):; x = x + 1; return x"
    assert len(novelty.expression("def activation(x):\n    return x" + " + x" * 100)) == 160


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("x * torch.sigmoid(x)", "torch.sigmoid(x) * x", True),
        ("F.gelu(x) + 0.1 * torch.sin(x)", "torch.sin(x) * 0.1 + F.gelu(x)", True),
        ("x + 1", "1.0 + x", True),
        ("(x + 1) + torch.tanh(x)", "x + (torch.tanh(x) + 1)", True),
        ("x - torch.tanh(x)", "torch.tanh(x) - x", False),
        ("x / 2", "2 / x", False),
        ("F.gelu(x)", "F.silu(x)", False),
    ],
)
def test_expression_keys_ignore_the_order_of_sums_and_products(a: str, b: str, same: bool) -> None:
    key_a = novelty.expression_key(f"def activation(x):\n    return {a}")
    key_b = novelty.expression_key(f"def activation(z):\n    return {b}")
    assert (key_a == key_b) is same


def test_known_answers_as_it_stood_when_a_proposal_was_built() -> None:
    known = novelty.Known()
    gelu = _member("def activation(x):\n    return F.gelu(x)", "gelu", -0.25)
    late = _member(SINE, "c7", -0.5, behaviour="b" * 64)
    known.add(gelu)
    known.add(late)
    dup = known.same_code(Hash("gelu" * 8), "def activation(x):\n    return F.gelu(x)", 1)
    assert dup is not None and dup.kind == "duplicate"
    assert dup.reason == "identical to gelu = F.gelu(x) (already scored, fitness -0.250)"
    # Written differently, the same expression.
    other = "def activation(x):\n    return torch.sin(x) * 0.1 + F.gelu(x)"
    assert known.same_code(Hash("new"), other, 2) is not None
    # A proposal built before c7 joined was not shown c7: no verdict from it.
    assert known.same_code(Hash("new"), other, 1) is None
    assert known.same_behaviour(Hash("b" * 64), other, 2) is not None
    assert known.same_behaviour(Hash("b" * 64), other, 1) is None
    failed = _member("def activation(x):\n    return torch.log(x)", "c3", None)
    known.add(failed)
    hit = known.same_code(Hash("c3" * 8), failed.score.source, 3)
    assert hit is not None and "already tried, it failed: nonfinite" in hit.reason


def test_feedback_names_the_copy_and_asks_for_something_else() -> None:
    text = novelty.feedback(novelty.Verdict("duplicate", "identical to elu = F.elu(x)", ""))
    assert "identical to elu = F.elu(x)" in text and "DIFFERENT" in text
    assert "could not use" in novelty.feedback(novelty.Verdict("parse_failure", "no block", ""))
    assert "rejected: `os`" in novelty.feedback(novelty.Verdict("rejected", "`os`", ""))


def test_the_prompt_lists_scored_functions_and_says_what_it_cut(tiny_lab: Lab) -> None:
    parent = _member(SINE, "p", -0.2)
    listed = [
        _member(f"def activation(x):\n    return torch.tanh({i} * x)", f"s{i}") for i in range(60)
    ]
    prompt = build_prompt(
        tiny_lab, parent, [], [], [], 4000, catalogue=listed, style="gate", inspiration=None
    )
    user = prompt.messages[1]["content"]
    assert "ALREADY SCORED" in user and "- s0 = torch.tanh(0 * x)" in user
    assert "Gate:" in user and "a copy is wasted" in user
    assert sum(len(m["content"]) for m in prompt.messages) <= 4000
    assert 0 < prompt.cut["scored list"] < 60


def test_the_scored_list_writes_only_the_lines_that_fit(
    tiny_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A line parses its member's source: a run of thousands must not write them all.
    parent = _member(SINE, "p", -0.2)
    listed = [
        _member(f"def activation(x):\n    return torch.tanh({i} * x)", f"s{i}") for i in range(2000)
    ]
    written: list[str] = []
    label = novelty.label
    monkeypatch.setattr(novelty, "label", lambda m: written.append(m.score.name) or label(m))
    prompt = build_prompt(tiny_lab, parent, [], [], [], 4000, catalogue=listed, style="gate")
    kept = 2000 - prompt.cut["scored list"]
    assert 0 < kept < 100 and len(written) == kept + 1  # the lines kept, and the first cut
    assert f"- s{kept - 1} = " in prompt.messages[1]["content"]
    assert f"- s{kept} = " not in prompt.messages[1]["content"]


def test_a_prompt_over_its_budget_says_so(tiny_lab: Lab) -> None:
    parent = _member(SINE, "p", -0.2)
    prompt = build_prompt(tiny_lab, parent, [], [], [], 1500, catalogue=[], style="tail")
    size = sum(len(m["content"]) for m in prompt.messages)
    assert prompt.cut["instruction"] == 1 and "Change how the parent" not in str(prompt.messages)
    assert prompt.cut["characters over the budget"] == size + 2 - 1500


def test_fit_to_context_leaves_room_for_the_reply_and_the_follow_ups() -> None:
    assert fit_to_context(8000, 32768, 1024, 2)[0] == 8000
    chars, note = fit_to_context(8000, 2048, 512, 1)
    assert chars == int(3.2 * (2048 - 512)) - FOLLOW_UP_CHARS
    assert "cut from 8000" in note and "2048" in note
    chars, note = fit_to_context(8000, 1024, 1000, 2)
    assert chars == 1500 and "lower --max-tokens" in note


@pytest.mark.parametrize(
    ("models", "props", "expected"),
    [
        (None, {"default_generation_settings": {"n_ctx": 2048}}, (2048, "GET /props")),
        ({"data": [{"id": "m", "max_model_len": 8192}]}, None, (8192, "GET /v1/models")),
        ({"data": [{"id": "m", "meta": {"n_ctx_train": 32768}}]}, None, (32768, "GET /v1/models")),
        (None, None, None),  # llama-cpp-python: it does not say
    ],
    ids=["llama-server", "vllm", "llama-server-meta", "silent"],
)
def test_context_length_comes_from_what_the_server_says(
    models: dict[str, object] | None, props: dict[str, object] | None, expected: object
) -> None:
    body = models or {"object": "list", "data": [{"id": "m"}]}
    with LLMServer(models=body, props=props) as server:

        async def ask() -> tuple[int, str] | None:
            async with llm.http_client() as http:
                return await llm.context_length(http, llm.LLMConfig(url=server.url, model="m"))

        assert asyncio.run(ask()) == expected


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        ("line 2: `torch.is_nan` is not an allowed function", "always finite"),
        ("line 2: attribute `.isinf` is only allowed as a method call", "always finite"),
        ("line 3: `math.inf` is not an allowed function", "always finite"),
        ("import of 'numpy' is not allowed; only torch", "not numpy"),
        ("line 2: `torch.frobnicate` is not an allowed function", ""),
        ("error: activation(x) raised TypeError: clamp() received an invalid combination of "
         "arguments - got (float, float)", "take a tensor first"),
        ("error: activation(x) raised TypeError: sigmoid(): argument 'input' (position 1) must "
         "be Tensor, not int", "take a tensor first"),
        ("error: activation(x) raised TypeError: selu() got an unexpected keyword argument "
         "'negative_slope'", "only its own keywords"),
    ],
)  # fmt: skip
def test_a_rejection_the_model_keeps_repeating_gets_a_hint(reason: str, hint: str) -> None:
    kind = "failed" if reason.startswith("error:") else "rejected"
    text = novelty.feedback(novelty.Verdict(kind, reason, ""))
    assert reason in text
    if hint:
        assert hint in text
    else:
        assert "always finite" not in text and "not numpy" not in text
        assert "take a tensor first" not in text and "only its own keywords" not in text


@pytest.mark.parametrize("kind", ["rejected", "parse_failure", "failed", "duplicate"])
def test_a_follow_up_quotes_a_long_reason_in_part(kind: str) -> None:
    """A reason that quotes the reply (a 7,000-character name) is told back cut short, so a
    follow-up stays within what the prompt keeps for it; the hint still comes with it."""
    name = "a" * 7000
    reason = f"line 2: `torch.{name}` is not allowed in candidate code"
    message = novelty.feedback(novelty.Verdict(kind, reason, ""))
    assert len(message) < FOLLOW_UP_CHARS
    assert "torch.aaa" in message and name not in message
    if kind == "rejected":
        assert "Call functions through their module" in message
    short = "line 2: `foo` is not allowed in candidate code"
    assert short in novelty.feedback(novelty.Verdict(kind, short, ""))


@pytest.mark.parametrize("kind", ["rejected", "parse_failure", "failed", "duplicate"])
def test_a_whole_follow_up_fits_the_room_kept_for_it(kind: str) -> None:
    """The longest reply shown back plus the longest reason (with each hint in turn) stays
    within FOLLOW_UP_CHARS, with room for the chat template."""
    from minact.search.conversation import _ASSISTANT_CHARS, _code_only

    template = 2 * 16 * 2  # two messages, ~16 tokens of chat template each, 2+ chars a token
    for key, _ in [("", ""), *novelty._HINTS]:
        verdict = novelty.Verdict(kind, key + " " + "r" * 5000, "s" * 5000)
        said = _code_only("t" * (_ASSISTANT_CHARS + 1), verdict)
        assert len(said) + len(novelty.feedback(verdict)) + template <= FOLLOW_UP_CHARS, key
