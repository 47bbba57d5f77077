"""A run's ranking index: whether its ranking.json still says what its event log says.

`show`, `export` and `rescore HASH` look a hash prefix up in every run. Ranking a run from
its event log takes about a second per few thousand candidates, and a runs folder only
grows; so when a report writes ranking.json it also writes `.ranking-index.json` beside it:
the code hash and name of every ranked candidate, how many events were skipped for their
shape, and the size and modification time (ns) of run.json, events.jsonl and ranking.json
as they were when the ranking was built and written. A lookup reads the small index of
each run and parses ranking.json only in a run that holds the prefix.

The log stays the source of truth: an index is used only while all three files are as it
recorded them, was written by this version of minact, and checks out against its own
digest. A run that grows (a resume), a file edited, copied or replaced, a ranking.json
without an index (a killed run, an older minact) or an index or ranking.json of the wrong
shape all make the lookup rank that run from its log, as it always did. Appends change
events.jsonl's size, and a rewrite its time, so a stale index is not taken for a current one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import minact
from minact.errors import ConfigError
from minact.lab.files import read_regular
from minact.runs import schema
from minact.runs.ranking import RankingDocument, RankingEntry
from minact.runs.rundir import write_atomic

__all__ = ["INDEX_NAME", "Index", "Stamp", "candidates", "read", "stamp", "well_formed", "write"]

INDEX_NAME = ".ranking-index.json"
_STAMPED = ("run.json", "events.jsonl")  # the files a ranking is built from
# Past it a file is not read (a speed-up only); never a FIFO, which would block the read.
_MAX_BYTES = 1 << 28
Stamp = dict[str, list[int] | None]  # file name -> [size, mtime_ns], None when absent


@dataclass(frozen=True, slots=True)
class Index:
    """What a run's current ranking.json holds, as far as a lookup needs.

    Attributes:
        names: (code hash, name) of each ranked candidate that has a hash, in rank order.
        skipped: the events of the wrong shape the ranking skipped (warned again on use).
    """

    names: tuple[tuple[str, str], ...]
    skipped: int


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def stamp(run: Path) -> Stamp:
    """Returns the size and modification time of run.json and events.jsonl, to be taken
    before the ranking is built from them (a line appended meanwhile then makes it stale,
    never current)."""
    return {name: _stat(run / name) for name in _STAMPED}


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def write(run: Path, ranking: RankingDocument, taken: Stamp, skipped: int) -> None:
    """Writes the index of `run`'s ranking.json, just written from the log as `taken` found
    it; an index that cannot be written is left out (lookups then rank the run's log)."""
    written = _stat(run / "ranking.json")
    if written is None:
        return
    body: dict[str, Any] = {
        "minact": minact.__version__,
        "files": {**taken, "ranking.json": written},
        "skipped": skipped,
        "names": [[h, c["name"]] for c in ranking["candidates"] if (h := c["code_hash"])],
    }
    text = json.dumps({**body, "digest": _digest(body)}) + "\n"
    with contextlib.suppress(ConfigError):  # a speed-up only: the log still has it all
        write_atomic(run / INDEX_NAME, text)


_NAMES = schema.list_of(schema.list_of(schema.text))


def read(run: Path) -> Index | None:
    """Returns the index of `run` when ranking.json is current (see the module's docstring);
    None when the run must be ranked from its log."""
    try:
        data = json.loads(read_regular(run / INDEX_NAME, _MAX_BYTES).decode("utf-8"))
        if not isinstance(data, dict):
            return None
        body = {k: v for k, v in data.items() if k != "digest"}
        if data.get("digest") != _digest(body) or body.get("minact") != minact.__version__:
            return None
        files = body.get("files")
        now = {**stamp(run), "ranking.json": _stat(run / "ranking.json")}
        if files != now or now["ranking.json"] is None:
            return None
        _NAMES("names", body.get("names"))
        schema.integer("skipped", body.get("skipped"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None  # BadValue is a ValueError: an index of the wrong shape
    pairs = body["names"]
    if any(len(pair) != 2 for pair in pairs):
        return None
    return Index(tuple((h, name) for h, name in pairs), body["skipped"])


# The fields of an entry that show, export, rescore and lineage read.
_ENTRY = schema.keys(
    {
        "name": schema.text,
        "code_hash": schema.optional(schema.text),
        "source": schema.text,
        "status": schema.text,
        "reason": schema.text,
        "parent": schema.optional(schema.text),
        "fitness": schema.optional(schema.number),
        "fitness_spread": schema.optional(schema.number),
        "mean_ood_mse": schema.optional(schema.number),
        "cost": schema.optional(schema.number),
        "tasks": schema.mapping_of(schema.mapping_of(schema.optional(schema.number))),
    },
    {"note": schema.text, "origin": schema.text, "index": schema.integer},
)


def candidates(run: Path, index: Index) -> list[RankingEntry] | None:
    """Returns the rows of `run`'s ranking.json that `index` describes; None when the file
    changed since. Only the fields a lookup links rows by are checked here: `well_formed`
    checks a row before it is shown."""
    try:
        doc = json.loads(read_regular(run / "ranking.json", _MAX_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    rows = doc.get("candidates") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(map(_linked, rows)):
        return None
    entries = cast(list[RankingEntry], rows)
    if [(h, c["name"]) for c in entries if (h := c["code_hash"])] != list(index.names):
        return None  # replaced since the index was read
    return entries


def _linked(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("name"), str)
        and isinstance(row.get("code_hash"), (str, type(None)))
        and isinstance(row.get("parent"), (str, type(None)))
    )


def well_formed(entry: RankingEntry) -> bool:
    """Returns whether a ranking row has the fields show, export and rescore read, each of
    the type minact writes."""
    try:
        _ENTRY("candidate", entry)
    except ValueError:
        return False
    return True
