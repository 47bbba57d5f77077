"""Tests for minact.jobs.interrupt: Ctrl-C (and SIGTERM) cancels the work on every
supported Python.

Python 3.10 is the version where this matters (asyncio.run lets KeyboardInterrupt unwind
the loop there); the test runs under each interpreter it finds: this one, and
`python3.10` ... `python3.13` on PATH when they run (with pyenv, for example
PYENV_VERSION=3.11.7:3.10.13). The module imports only the standard library, so a bare
interpreter can run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import minact

PACKAGE_PARENT = str(Path(minact.__file__).resolve().parent.parent)

# Work that says it is ready, then waits for ever; SIGINT or SIGTERM must cancel it (running its
# cleanup) and the job must return the value it chose for an interruption.
SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from minact.jobs.interrupt import until_interrupted

async def work():
    try:
        print("ready", flush=True)
        await asyncio.Event().wait()
        return "finished"
    finally:
        print("cleaned up", flush=True)

async def main():
    return await until_interrupted(work(), lambda: "interrupted")

print(asyncio.run(main()), flush=True)
"""


def _interpreters() -> list[tuple[str, str]]:
    """Returns (version, executable) of each interpreter found, one per version."""
    found = {f"{sys.version_info[0]}.{sys.version_info[1]}": sys.executable}
    for minor in (10, 11, 12, 13):
        exe = shutil.which(f"python3.{minor}")
        if exe is None or f"3.{minor}" in found:
            continue
        probe = subprocess.run([exe, "-c", "print(1)"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            found[f"3.{minor}"] = exe
    return sorted(found.items())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    ("version", "exe"), [pytest.param(v, exe, id=f"python{v}") for v, exe in _interpreters()]
)
def test_a_stop_signal_cancels_the_work_and_returns_the_interrupted_value(
    version: str, exe: str, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [exe, "-c", SCRIPT, PACKAGE_PARENT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"  # the handler is installed by now
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"python {version}: {err}"
    assert out == "cleaned up\ninterrupted\n", f"python {version}: {out!r} {err}"


def test_python_3_10_is_among_the_interpreters_when_it_runs() -> None:
    versions = [v for v, _ in _interpreters()]
    if "3.10" not in versions:
        pytest.skip("python3.10 is not on PATH (or does not run); its case was not tested")


# Work that ends at once, under a SIGTERM handler of the caller's (the CLI's, which takes
# SIGTERM as Ctrl-C): after the work, SIGTERM must reach that handler again.
RESTORED = """
import asyncio, signal, sys
sys.path.insert(0, sys.argv[1])
from minact.jobs.interrupt import until_interrupted

def mine(signum, frame):
    raise KeyboardInterrupt

async def work():
    return "finished"

async def main():
    done = await until_interrupted(work(), lambda: "interrupted")
    print(done, signal.getsignal(signal.SIGTERM) is mine, flush=True)
    try:
        signal.raise_signal(signal.SIGTERM)
    except KeyboardInterrupt:
        print("taken as Ctrl-C", flush=True)

signal.signal(signal.SIGTERM, mine)
asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("version", "exe"), [pytest.param(v, exe, id=f"python{v}") for v, exe in _interpreters()]
)
def test_the_callers_sigterm_handler_is_back_after_the_work(version: str, exe: str) -> None:
    # asyncio's removal of its handler left SIGTERM ending the process: `minact evolve`,
    # stopped by `kill` once its search was over (writing its output), died with no word
    # and exit status -15 instead of 130.
    done = subprocess.run(
        [exe, "-c", RESTORED, PACKAGE_PARENT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, f"python {version}: {done.returncode} {done.stderr}"
    assert done.stdout == "finished True\ntaken as Ctrl-C\n", f"python {version}: {done.stdout!r}"
