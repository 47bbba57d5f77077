"""Tests for minact.jobs.options: what a resumed run restores, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minact.errors import ConfigError, UsageError
from minact.jobs.options import EvolveOptions, check_budget, resolve, started_with
from minact.jobs.recorded import replayed
from minact.outcome import Outcome
from minact.runs.history import History


def test_a_run_started_before_repairs_resumes_without_them() -> None:
    old = {"options": {"budget": 10, "llm_url": "http://127.0.0.1:1/v1", "follow_ups": 2}}
    assert EvolveOptions.from_run(old).repair is False  # its replies were judged as written
    new = {"options": EvolveOptions(budget=10, llm_url="http://127.0.0.1:1/v1").to_dict()}
    assert EvolveOptions.from_run(new).repair is True
    assert EvolveOptions().repair is True


def test_a_run_started_before_the_follow_up_rule_answers_every_bad_reply() -> None:
    old = {"options": {"budget": 10, "llm_url": "http://127.0.0.1:1/v1", "follow_ups": 2}}
    assert EvolveOptions.from_run(old).follow_up_rule == "always"
    new = {"options": EvolveOptions(budget=10, llm_url="http://127.0.0.1:1/v1").to_dict()}
    assert EvolveOptions.from_run(new).follow_up_rule == "paying"
    bad = {"options": {**new["options"], "follow_up_rule": "sometimes"}}
    with pytest.raises(ConfigError, match=r"options\.follow_up_rule.*paying, always"):
        started_with(bad, {}, Path("run.json"))


def test_a_resume_keeps_the_repair_setting_of_an_llm_run() -> None:
    started = EvolveOptions(budget=10, llm_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=r"^--no-repair: the run was started with --repair,"):
        resolve({"repair": False}, started)
    no_repair = EvolveOptions(budget=10, llm_url="http://127.0.0.1:1/v1", repair=False)
    with pytest.raises(
        ConfigError, match=r"^--repair: the run was started without it, .* leave --repair out"
    ):
        resolve({"repair": True}, no_repair)
    with pytest.raises(
        ConfigError, match=r"^--seed 3: the run was started with 0, .* leave --seed out"
    ):
        resolve({"seed": 3}, started)
    assert resolve({"repair": True, "budget": 20}, started).budget == 20
    # The offline mutator's replies are never repaired: the setting steers nothing there.
    offline = EvolveOptions(budget=10, offline=True)
    assert resolve({"repair": False}, offline).repair is False


def test_a_resume_names_a_setting_the_run_was_started_without() -> None:
    started = EvolveOptions(budget=10, llm_url="http://127.0.0.1:1/v1", model="m")
    with pytest.raises(ConfigError, match=r"^--replay 'x.jsonl': the run was started without it,"):
        resolve({"replay": "x.jsonl"}, started)


def _recorded(tmp_path: Path, run: object) -> str:
    """Writes a recorded run's run.json and llm.jsonl; returns the --replay file."""
    (tmp_path / "run.json").write_text(json.dumps(run))
    (tmp_path / "llm.jsonl").write_text("")
    return str(tmp_path / "llm.jsonl")


def test_a_replay_takes_the_recorded_runs_settings_where_none_are_given(tmp_path: Path) -> None:
    options = EvolveOptions(
        llm_url="http://127.0.0.1:1/v1", model="m", seed=7, follow_ups=3, repair=False, budget=9
    ).to_dict()
    replay = _recorded(tmp_path, {"options": options, "prompt": {"context": 2048}})
    given, said = replayed({"replay": replay, "budget": 4, "follow_ups": 1})
    # The server reported a 2048-token context; the run was fitted to it, so the replay is.
    assert given == {
        "replay": replay, "budget": 4, "follow_ups": 1, "seed": 7, "model": "m",
        "repair": False, "context_tokens": 2048,
    }  # fmt: skip
    assert said is not None and "--seed 7" in said and "--no-repair" in said
    assert "--follow-ups" not in said  # given: the user's flag wins
    assert replayed({"replay": replay})[0]["budget"] == 9  # where the recording stopped
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "llm.jsonl").write_text("")
    assert replayed({"replay": str(alone / "llm.jsonl")}) == (
        {"replay": str(alone / "llm.jsonl")},
        None,
    )
    # A setting the replay does not take is not its concern, whatever its value.
    odd = _recorded(tmp_path, {"options": {**options, "workers": -1, "device": "tpu"}})
    assert replayed({"replay": odd})[0]["seed"] == 7


@pytest.mark.parametrize(
    ("run", "match"),
    [
        ({"options": {"seed": -1, "workers": -1}}, r"options\.seed"),
        ({"options": {}, "prompt": {"context": "big"}}, r"prompt\.context"),
        ("not a run", r"run\.json"),
    ],
)
def test_a_replay_names_a_bad_setting_of_the_recorded_run(
    tmp_path: Path, run: object, match: str
) -> None:
    replay = _recorded(tmp_path, run)
    with pytest.raises(ConfigError, match=rf"^--replay .*llm\.jsonl: the recorded run's .*{match}"):
        replayed({"replay": replay})


def test_a_resume_of_the_mutators_run_refuses_a_server() -> None:
    # Started with no server (and no --offline), its proposals came from the mutator: an
    # --llm-url (or MINACT_LLM_URL) given on the resume put a model to the rest of the run.
    mutator = EvolveOptions(budget=10)
    with pytest.raises(
        ConfigError, match=r"^--llm-url 'http://127.0.0.1:1/v1': the run's candidates came from the"
    ):
        resolve({"llm_url": "http://127.0.0.1:1/v1", "budget": 20}, mutator)
    # Another address for the run's server, or a URL an --offline run ignores, is free.
    llm = EvolveOptions(budget=10, llm_url="http://127.0.0.1:1/v1")
    assert resolve({"llm_url": "http://127.0.0.1:2/v1"}, llm).llm_url == "http://127.0.0.1:2/v1"
    offline = EvolveOptions(budget=10, offline=True)
    assert resolve({"llm_url": "http://127.0.0.1:2/v1"}, offline).offline is True


def test_a_resume_refuses_a_budget_whose_automatic_call_cap_is_below_the_calls_made(
    tmp_path: Path,
) -> None:
    # 13 calls and nothing evaluated (every reply unparsable): --budget 1 passed, and its
    # automatic cap (4 x 1 + 1 = 5) stopped the resume at once, run.json counting 6 calls.
    history = History()
    for k in range(5):
        history.outcomes[k] = Outcome(k, "parse_failure", turns=3 if k < 4 else 1)
    assert history.calls() == 13 and not history.evaluated()
    started = EvolveOptions(budget=3, concurrency=1, llm_url="http://127.0.0.1:1/v1")
    where = tmp_path / "run.json"
    with pytest.raises(ConfigError, match=r"^--budget 1: its call cap .*: 5\) is below the 13"):
        check_budget(resolve({"budget": 1}, started), {"budget": 1}, history, where)
    check_budget(resolve({"budget": 3}, started), {"budget": 3}, history, where)  # 13: the run's
    check_budget(resolve({"budget": 1, "max_calls": 13}, started), {"budget": 1}, history, where)


def test_a_resume_checks_a_ray_address_against_the_runs_backend() -> None:
    # The CLI refused --ray-address without --backend ray before it read run.json: a Ray
    # run could not be resumed on another cluster without repeating its backend.
    ray = EvolveOptions(budget=10, backend="ray", ray_address="auto")
    assert resolve({"ray_address": "10.0.0.1:6379"}, ray).ray_address == "10.0.0.1:6379"
    local = EvolveOptions(budget=10)
    with pytest.raises(UsageError, match=r"^needs --backend ray \(the run's is local\)"):
        resolve({"ray_address": "auto"}, local)
    assert resolve({"ray_address": "auto", "backend": "ray"}, local).backend == "ray"
    assert resolve({"backend": "local"}, ray).backend == "local"  # its address goes unused
    with pytest.raises(UsageError, match=r"^needs --backend ray"):
        resolve({"ray_address": "auto"})  # a new run's
