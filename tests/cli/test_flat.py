"""A flat candidate (f' = 0 almost everywhere) scored by `minact score` through the real
worker: it trains and keeps its fitness, and its reason says it is flat, in ranking.json's
`reason` and beside its status in the table; ordinary candidates have no reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS, write_candidate

runner = CliRunner()


def test_score_says_a_flat_candidate_is_flat(tmp_path: Path) -> None:
    sign = write_candidate(tmp_path, "sign", "torch.sign(x)")
    args = ["score", "relu", str(sign), "--tasks", str(TINY_TASKS)]
    args += ["--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stdout
    by_name = {c["name"]: c for c in json.loads(result.stdout)["candidates"]}
    flat, relu = by_name["sign"], by_name["relu"]
    assert flat["status"] == "ok" and flat["fitness"] is not None
    assert flat["reason"].startswith("flat: f'(x) = 0 at every probe point")
    assert relu["status"] == "ok" and relu["reason"] == ""
    table = runner.invoke(app, args)  # answered from the cache: the note is kept there too
    assert table.exit_code == 0, table.stdout
    row = next(line for line in table.stdout.splitlines() if "│ sign " in line)
    assert "│ ok: flat:" in row, table.stdout
