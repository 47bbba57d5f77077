"""A redirect to a host httpx parses but cannot decode (IDNA) fails as any Location no URL."""

from __future__ import annotations

import pytest

from minact.errors import LLMError
from minact.search import llm
from minact.search.llm import LLMClient, LLMConfig
from tests.fakes import Sleeps, run
from tests.llm_server import LLMServer, Redirect
from tests.search.test_hostile_models import MESSAGES


@pytest.mark.parametrize("location", ["http://xn--a.com/v1", "http://xn--ls8h.la/"])
def test_a_redirect_to_an_undecodable_host_fails_at_once(location: str) -> None:
    gets = {"/v1/models": Redirect(location), "/props": Redirect(location)}
    with LLMServer(lambda body: Redirect(location, 302), gets=gets) as server:
        config = LLMConfig(server.url, "test-model", retries=2)

        async def main() -> tuple[str, str]:
            async with llm.http_client() as http:
                with pytest.raises(LLMError) as checked:
                    await llm.server_model(http, config)
                with pytest.raises(LLMError) as sent:
                    await LLMClient(http, config, sleep=Sleeps()).complete(MESSAGES)
                return str(checked.value), str(sent.value)

        checked, sent = run(main())
        assert len(server.requests) == 2  # one each: neither is retried
    assert f"redirect to '{location}', which is not a URL: not followed" in checked
    assert f"302 redirect to '{location}', which is not" in sent
