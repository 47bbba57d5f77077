"""The start-up checks of an LLM server as a run's start says them (minact.jobs.proposing),
against the real loopback server: a model named is used even where the server's list of
models cannot be read, and the start line says what that leaves unknown."""

from __future__ import annotations

from typing import Any

import pytest

from minact.errors import LLMError
from minact.jobs import proposing
from minact.jobs.options import EvolveOptions
from minact.search.config import SearchConfig
from minact.search.prompt import FOLLOW_UP_CHARS
from minact.search.server import CHECK_BYTES
from tests.fakes import run
from tests.llm_server import Endless, LLMServer


def _start(options: EvolveOptions) -> dict[str, Any]:
    """Returns the proposer's description (run.json's) for `options`."""

    async def main() -> dict[str, Any]:
        async with proposing.proposer(options, None) as (_, described):
            return described

    return run(main())


def test_a_named_model_starts_unchecked_when_the_list_is_too_long() -> None:
    # The run ended at GET /models ("its answer is longer than 8388608 bytes"), though
    # the model was named and the list only checks it.
    with LLMServer(gets={"/v1/models": Endless()}) as server:
        options = EvolveOptions(llm_url=server.url, model="test-model")
        described = _start(options)
        asked = [r for r in server.requests if r.path == "/v1/models"]
    assert len(asked) == 1  # the context probe does not read the endless list again
    config = proposing.fitted(SearchConfig(budget=1), options, described)
    line = proposing.describe(described)
    assert line.startswith(
        f"proposer: LLM test-model at {server.url} (unchecked: GET {server.url}/models gave"
        f" no usable list of models (its answer is longer than {CHECK_BYTES} bytes)"
    )
    assert "whether the server serves test-model, and the context length" in line
    assert "the server does not say the model's context" in line  # the prompt's note
    assert config.prompt_chars == options.prompt_chars and config.models == ("test-model",)


def test_without_a_model_named_a_list_too_long_still_ends_the_run() -> None:
    with LLMServer(gets={"/v1/models": Endless()}) as server:
        with pytest.raises(LLMError) as info:
            _start(EvolveOptions(llm_url=server.url))
    assert f"its answer is longer than {CHECK_BYTES} bytes" in str(info.value)


@pytest.mark.parametrize("context", [16, 512])
def test_a_context_too_small_for_the_reply_holds_no_follow_up(context: int) -> None:
    # conversation_room comes to 0 here, which in SearchConfig means "unknown, no limit".
    options = EvolveOptions(llm_url="http://127.0.0.1:9/v1", model="m", max_tokens=512)
    described = {"proposer": "llm", "models": [{"name": "m", "url": "u", "weight": 1.0,
                                                "context": [context, "the server"]}]}  # fmt: skip
    config = proposing.fitted(SearchConfig(budget=1, follow_ups=2), options, described)
    # A room of 0 lets every follow-up through; any room under FOLLOW_UP_CHARS none.
    assert 0 < config.context_chars < FOLLOW_UP_CHARS
