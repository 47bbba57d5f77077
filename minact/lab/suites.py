"""The built-in labs and suites: packaged tasks files that can be named instead of a path.

`--tasks classic`, `--suite algorithmic` and the like resolve here. A path to an existing file
always wins over a name, so a local file called `real` is still read as a file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from minact.errors import ConfigError

__all__ = ["SUITES", "Suite", "resolve", "suite_path"]


@dataclass(frozen=True, slots=True)
class Suite:
    """A packaged tasks file.

    Attributes:
        name: what users type.  file: under minact/lab/data/.  summary: one line.
        cpu_seconds: measured evaluation time per candidate on a shared, loaded 2-core CPU,
        one worker thread (bench/RESULTS.md); None where not measured.
        needs: an optional module the suite imports ("sklearn"), with its install hint.
    """

    name: str
    file: str
    summary: str
    cpu_seconds: float | None = None
    needs: tuple[str, str] | None = None


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("default", "tasks.toml", "the default lab (./tasks.toml, when present, wins)", 4.0),
        Suite("classic", "classic.toml", "the hand-written 10-task lab of minact 0.1", 5.2),
        Suite("large", "large.toml", "the default lab's families with 200 tasks: for a GPU", 9.0),
        Suite(
            "transfer",
            "transfer.toml",
            "transfer: set (length generalisation), classification and regression tasks",
            2.3,
        ),
        Suite(
            "algorithmic",
            "algorithmic.toml",
            "graph algorithms (CLRS-30 style): train on 8-node graphs, test on 32",
            9.2,
        ),
        Suite(
            "real",
            "real.toml",
            "scikit-learn's bundled digits, diabetes and breast cancer data, shifted",
            1.5,
            needs=("sklearn", "pip install 'minact[suites]' (or: pip install scikit-learn)"),
        ),
    )
}


def suite_path(name: str) -> Path:
    """Returns the tasks file of a built-in lab or suite; raises ConfigError for an unknown
    name, a missing optional dependency or a zipped install."""
    suite = SUITES.get(name)
    if suite is None:
        raise ConfigError(
            f"unknown built-in lab {name!r}; the built-in labs are: {', '.join(SUITES)}"
        )
    if suite.needs is not None and importlib.util.find_spec(suite.needs[0]) is None:
        raise ConfigError(
            f"the {name!r} suite needs {suite.needs[0]}, which is not installed: {suite.needs[1]}"
        )
    shipped = resources.files("minact.lab").joinpath("data").joinpath(suite.file)
    if isinstance(shipped, Path):
        return shipped
    # A zipped install has no real path; the user can still pass one explicitly.
    raise ConfigError(f"the packaged {suite.file} is not a file on disk ({shipped}); pass --tasks")


def resolve(path: Path) -> Path:
    """Returns `path`, or the packaged file of the built-in lab it names when no file is there
    (a folder of that name, as `real/` of data, does not hide the built-in lab)."""
    try:
        is_file = path.is_file()
    except OSError:  # a folder on the way that cannot be searched: reading says so, naming it
        return path
    if not is_file and str(path) in SUITES:
        return suite_path(str(path))
    return path
