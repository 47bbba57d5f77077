"""`minact score SRC...` reads a candidate file only if it is a small regular file.

A sparse 2 GB file, a symlink to /dev/zero and a FIFO used to be read whole (or forever);
now each is refused with a ConfigError naming the file (and the limit), after reading at most
the limit + 1 bytes and without blocking.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from minact.candidate import Candidate
from minact.errors import ConfigError
from minact.jobs.score import MAX_SOURCE_BYTES, read_sources, shadowed
from tests.conftest import raised_on_fifo

SOURCE = "import torch\n\ndef activation(x):\n    return torch.tanh(x)\n"


def test_a_huge_sparse_file_is_refused_reading_at_most_the_limit(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.py"
    with sparse.open("wb") as f:
        f.truncate(2 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            read_sources([str(sparse)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"cannot read candidate file {sparse}: it is larger than the limit of "
        f"{MAX_SOURCE_BYTES} bytes"
    )
    assert peak < 1 << 20


def test_the_limit_is_bytes_and_a_file_at_it_is_read(tmp_path: Path) -> None:
    at = tmp_path / "at.py"
    at.write_text(SOURCE + "#" * (MAX_SOURCE_BYTES - len(SOURCE)), encoding="utf-8")
    _, rejected = read_sources([str(at)])  # read, then judged by the validator (too long)
    assert [r.status for r in rejected] == ["invalid"]
    over = tmp_path / "over.py"
    over.write_bytes(at.read_bytes() + b"#")
    with pytest.raises(
        ConfigError, match=f"over.py: it is larger than the limit of {MAX_SOURCE_BYTES}"
    ):
        read_sources([str(over)])
    small = tmp_path / "small.py"
    small.write_text(SOURCE, encoding="utf-8")
    (candidate,), _ = read_sources([str(small)])
    assert isinstance(candidate, Candidate) and candidate.name == "small"


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    link = tmp_path / "zero.py"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match=r"zero.py: it is not a regular file \(a character dev"):
        read_sources([str(link)])


def test_a_symlink_to_a_source_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "link.py").symlink_to(tmp_path / "real.py")
    (candidate,), _ = read_sources([str(tmp_path / "link.py")])
    assert candidate.name == "link"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pkg.py").mkdir()
    with pytest.raises(ConfigError, match=r"pkg.py: it is not a regular file \(a directory\)"):
        read_sources([str(tmp_path / "pkg.py")])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    exc = raised_on_fifo(fifo, lambda path: read_sources([str(path)]))
    assert isinstance(exc, ConfigError)
    assert "pipe.py: it is not a regular file (a FIFO (named pipe))" in str(exc)


def test_a_folder_or_file_named_like_a_built_in_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gelu").mkdir()
    (tmp_path / "tanh").write_text(SOURCE.replace("tanh(x)", "tanh(x) * 0.5"))
    candidates, rejected = read_sources(["gelu", "tanh", "./tanh"])
    assert rejected == []
    assert candidates[0].name == "gelu" and "F.gelu" in candidates[0].source
    # A built-in's name is the built-in, whatever the folder holds; a path names the file,
    # shown by that path (its stem and file name are the built-in's), and score says so.
    assert candidates[1].name == "tanh" and "0.5" not in candidates[1].source
    assert candidates[2].name == "./tanh" and "0.5" in candidates[2].source
    assert shadowed(["gelu", "tanh", "./tanh"]) == [
        "tanh: the built-in tanh is scored, not the file ./tanh (give ./tanh for it)"
    ]


def test_files_are_shown_by_names_no_built_in_and_no_other_file_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for path, k in (("relu.py", 1), ("sub/relu.py", 2), ("mine.py", 3), ("GELU.py", 4)):
        (tmp_path / path).write_text(SOURCE.replace("tanh(x)", f"tanh(x) * 0.{k}"))
    absolute = str(tmp_path / "relu.py")
    candidates, _ = read_sources([absolute, "mine.py", "GELU.py", "relu"])
    # relu.py's stem is the built-in's (and the lab's reference's) name: its file name shows.
    assert [c.name for c in candidates] == ["relu.py", "mine", "GELU.py", "relu"]
    candidates, _ = read_sources(["sub/relu.py", "relu.py"])
    assert [c.name for c in candidates] == ["sub/relu.py", "relu.py"]
