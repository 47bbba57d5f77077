"""Tests for decode_source: a candidate file is scored as the text Python reads from it.

Python honours an encoding declaration in a file's first two lines (PEP 263); minact reads
candidate files as UTF-8. Where the two readings differ, minact would score other code
than importing the file runs, so such a file is refused. Nothing here runs candidate code.
"""

from __future__ import annotations

from pathlib import Path

from minact.candidate import Candidate, Rejection
from minact.jobs.score import read_sources
from minact.validate import decode_source, validate

BODY = b"import torch\n\n\ndef activation(x):\n    return torch.tanh(x)\n"
# In UTF-8 the second line of the body is a comment; in UTF-7, `+AAo-` is a newline, so
# Python runs `return torch.sin(x)` first.
HIDDEN = (
    b"# coding: utf-7\nimport torch\n\n\ndef activation(x):\n"
    b"    #+AAo-    return torch.sin(x)\n    return torch.tanh(x)\n"
)


def test_a_declaration_under_which_python_reads_other_code_is_refused() -> None:
    assert "\n    return torch.sin(x)\n" in HIDDEN.decode("utf-7")  # what Python would run
    got = decode_source(HIDDEN)
    assert isinstance(got, Rejection)
    assert "utf-7" in got.reason and "UTF-8" in got.reason


def test_declarations_under_which_python_reads_the_same_text_are_accepted() -> None:
    for cookie in (
        b"# -*- coding: utf-8 -*-\n",
        b"# coding=latin-1\n",
        b"# vim: fileencoding=ascii\n",
    ):
        got = decode_source(cookie + BODY)
        assert got == (cookie + BODY).decode("utf-8"), cookie
        assert isinstance(validate(got), Candidate)
    # Python reads a declaration only in the first two lines (the second after a comment).
    late = b"import torch\n# coding: utf-7\n\ndef activation(x):\n    #+AAo-    return x\n"
    assert decode_source(late) == late.decode("utf-8")
    assert (
        decode_source(b"\xef\xbb\xbf# coding: utf-8\n" + BODY)
        == "# coding: utf-8\n" + BODY.decode()
    )


def test_non_ascii_text_under_a_single_byte_declaration_is_refused() -> None:
    # "café" in UTF-8 is "cafÃ©" in latin-1: Python would read other text than the file shows.
    got = decode_source(b"# coding: latin-1\n# caf\xc3\xa9\n" + BODY)
    assert isinstance(got, Rejection) and "iso-8859-1" in got.reason


def test_declarations_python_cannot_read_are_refused_with_the_reason() -> None:
    unknown = decode_source(b"# coding: no-such-codec\n" + BODY)
    assert isinstance(unknown, Rejection) and "no-such-codec" in unknown.reason
    against_bom = decode_source(b"\xef\xbb\xbf# coding: latin-1\n" + BODY)
    assert isinstance(against_bom, Rejection) and "encoding" in against_bom.reason
    not_text = decode_source(b"# coding: rot13\n" + BODY)  # a codec, but not of text
    assert isinstance(not_text, Rejection) and "rot13" in not_text.reason


def test_score_refuses_such_a_file_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "hidden.py"
    path.write_bytes(HIDDEN)
    candidates, rejected = read_sources([str(path)])
    assert candidates == []
    assert [r.name for r in rejected] == ["hidden"] and "utf-7" in rejected[0].reason
