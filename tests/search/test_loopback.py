"""Which hosts are this machine (minact.search.loopback), and that proxy variables never
capture a request to one: real HTTP, a server on 127.0.0.2 and a proxy on 127.0.0.1."""

from __future__ import annotations

import pytest

from minact.search import llm
from minact.search.llm import LLMClient, LLMConfig, Message
from minact.search.loopback import is_loopback
from tests.fakes import Sleeps, run
from tests.llm_server import GOOD_REPLY, LLMServer

MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "0:0:0:0:0:0:0:1",
     "::ffff:127.0.0.1", "[::ffff:127.0.0.2]", "::FFFF:7f00:1", "127.1", "0x7f.0.0.1",
     "2130706433", "0.0.0.0", "::", "localhost", "LOCALHOST", "localhost.", "foo.localhost",
     "a.b.localhost."],
)  # fmt: skip
def test_the_whole_loopback_range_and_localhost_names_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["128.0.0.1", "10.0.0.1", "::ffff:10.0.0.1", "fe80::1", "127.example.com", "example.com",
     "localhost.example.com", "notlocalhost", "0x7f.example", "1", ""],
)  # fmt: skip
def test_other_hosts_are_not_loopback(host: str) -> None:
    # 127.example.com was taken for local: its proxy variables were then ignored.
    assert not is_loopback(host)


def _ask(url: str, servers: list[str]) -> str:
    async def main() -> str:
        async with llm.http_client(use_proxy_env=True, servers=servers) as http:
            config = LLMConfig(url, "test-model", api_key="sk-local-0123456789", retries=0)
            client = LLMClient(http, config, sleep=Sleeps(), thinks_first=False)
            return (await client.complete(MESSAGES)).text

    return run(main())


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> LLMServer:
    """Yields a server that HTTP_PROXY names: what reaches it went through the proxy."""
    with LLMServer() as p:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", p.url.removesuffix("/v1"))
        yield p


def test_a_server_on_another_loopback_address_is_never_proxied(proxy: LLMServer) -> None:
    # Only 127.0.0.1, localhost and [::1] were reached directly: with a remote API in the
    # ensemble, a server on 127.0.0.2 (and its key) went to the proxy, which cannot reach it.
    with LLMServer(host="127.0.0.2") as server:
        assert _ask(server.url, [server.url, "https://api.example.com/v1"]) in GOOD_REPLY
        assert [r.path for r in server.requests] == ["/v1/chat/completions"]
    assert proxy.requests == []


def test_an_ipv4_mapped_loopback_address_is_never_proxied(
    server: LLMServer, proxy: LLMServer
) -> None:
    url = server.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")
    assert _ask(url, [url]) in GOOD_REPLY
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]
    assert proxy.requests == []
