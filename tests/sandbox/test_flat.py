"""Flat candidates (f' = 0 almost everywhere: sign, round, floor, a constant) are admitted
with a note in their reason, and nothing else changes: an ordinary candidate's admission
has no note, and the note leaves the behaviour hash alone."""

from __future__ import annotations

import pytest

from minact.candidate import Candidate
from minact.sandbox.admission import FLAT_SHARE, admit
from minact.score import Admission
from minact.validate import validate
from tests.conftest import candidate_source

PROBE = (-10.0, 10.0)


def _admit(body: str) -> Admission:
    checked = validate(candidate_source(body))
    assert isinstance(checked, Candidate), checked
    return admit(checked.source, PROBE, 16.0)


@pytest.mark.parametrize(
    "body", ["torch.sign(x)", "torch.round(x)", "torch.floor(x)", "x * 0 + 1", "torch.ceil(x) * 2"]
)
def test_a_flat_candidate_is_admitted_with_a_note(body: str) -> None:
    result = _admit(body)
    assert result.status == "ok" and result.behaviour_hash is not None, result
    assert result.reason.startswith("flat: f'(x) = 0 at every probe point in [-10, 10]")
    assert "only the output layer trains" in result.reason


def test_a_slope_on_a_negligible_share_of_the_probe_range_is_flat() -> None:
    # Non-zero only on (9.95, 10]: 0.25% of the probe range, below FLAT_SHARE.
    assert FLAT_SHARE > 0.0025
    result = _admit("F.relu(x - 9.95)")
    assert result.ok and result.reason.startswith("flat: f'(x) = 0 at 99.")


@pytest.mark.parametrize(
    "body", ["F.relu(x)", "F.hardtanh(x)", "F.relu(x - 9.0)", "torch.round(x) + 0.01 * x"]
)
def test_a_candidate_with_a_slope_has_no_note(body: str) -> None:
    result = _admit(body)
    assert result.ok and result.reason == "", result


def test_the_note_leaves_the_behaviour_hash_alone() -> None:
    # Same function, two spellings: one behaviour hash, the same note.
    a, b = _admit("torch.sign(x)"), _admit("torch.sign(x) * 1.0")
    assert a.behaviour_hash == b.behaviour_hash and a.reason == b.reason
