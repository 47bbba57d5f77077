"""Tests for prompts over a lab of many tasks (the default lab has 100): summarised, in budget."""

from __future__ import annotations

from pathlib import Path

from minact.candidate import Hash
from minact.lab.loader import load_lab
from minact.score import Score, TaskScore
from minact.search.population import Member
from minact.search.prompt import build_messages

PARENT = "def activation(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)"


def test_a_lab_of_many_tasks_is_summarised_and_the_prompt_keeps_its_budget() -> None:
    lab = load_lab(Path("default"))
    assert len(lab.tasks) > 12
    tasks = {t.name: TaskScore(1.0, 0.1, 0.0, i / 100) for i, t in enumerate(lab.tasks)}
    score = Score("p", Hash("p" * 8), PARENT, "ok", "", Hash("p" * 9), -0.2, None, 1.5, tasks)
    top = Member(score, 0, 0, "llm")
    messages = build_messages(lab, top, [top], [], [], max_chars=8000)
    system, user = messages[0]["content"], messages[1]["content"]
    assert len(system) < 3000  # about 9400 when every task was listed
    assert "- polynomial (25 tasks), e.g. polynomial-1-001: y = " in system
    last, first = lab.tasks[-1].name, lab.tasks[0].name
    assert f"log-ratio over {len(lab.tasks)} tasks; worst: {last} +0.99" in user
    assert f"best: {first} +0.00" in user
    assert "TOP #1" in user  # room is left for the other candidates
