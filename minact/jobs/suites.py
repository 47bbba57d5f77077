"""`minact suites` as a job: the built-in labs and suites, loaded, with their size and cost."""

from __future__ import annotations

from dataclasses import dataclass

from minact.errors import ConfigError
from minact.lab.loader import load_lab
from minact.lab.suites import SUITES, suite_path

__all__ = ["SuiteRow", "list_suites"]


@dataclass(frozen=True, slots=True)
class SuiteRow:
    """One built-in lab as `minact suites` shows it.

    Attributes:
        tasks, networks: per candidate (networks = tasks x seeds); None when it cannot load.
        kinds, families: in file order.  cpu_seconds: measured per candidate (Suite).
        problem: why it cannot load (a missing optional dependency), else "".
    """

    name: str
    summary: str
    path: str
    tasks: int | None
    networks: int | None
    kinds: tuple[str, ...]
    families: tuple[str, ...]
    cpu_seconds: float | None
    problem: str = ""


def list_suites() -> list[SuiteRow]:
    """Returns a row per built-in lab, loading each (a missing extra is shown, not raised)."""
    rows = []
    for suite in SUITES.values():
        try:
            lab = load_lab(suite_path(suite.name))
        except ConfigError as e:
            rows.append(
                SuiteRow(suite.name, suite.summary, suite.file, None, None, (), (), None, str(e))
            )
            continue
        rows.append(
            SuiteRow(
                name=suite.name,
                summary=suite.summary,
                path=str(lab.path),
                tasks=len(lab.tasks),
                networks=sum(t.settings.seeds for t in lab.tasks),
                kinds=tuple(dict.fromkeys(t.kind for t in lab.tasks)),
                families=lab.families(),
                cpu_seconds=suite.cpu_seconds,
            )
        )
    return rows
