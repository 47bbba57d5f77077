"""Tests for minact.plots: SVG text that inlines in HTML, and matplotlib kept out of --help."""

from __future__ import annotations

import math
import random
import re
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from typing import Any

import pytest
from matplotlib import colormaps
from matplotlib.colors import to_hex

from minact.curves import GRID
from minact.report import plots

LO, HI, N = GRID
X = [LO + (HI - LO) * i / (N - 1) for i in range(N)]


def _curve(f: float) -> tuple[list[float], list[float], list[float]]:
    return X, [math.tanh(f * x) for x in X], [f / math.cosh(f * x) ** 2 for x in X]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(svg: str) -> _Tags:
    p = _Tags()
    p.feed(svg)
    return p


def _check_inline(svg: str) -> _Tags:
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    # Nothing rasterised or embedded: no images, no fonts, no references outside the SVG.
    assert "<image" not in svg and "@font-face" not in svg and "data:" not in svg
    parsed = _parse(svg)
    for _, attrs in parsed.tags:
        for key, value in attrs.items():
            if key.endswith("href") or key == "src":
                assert value is not None and value.startswith("#"), (key, value)
    assert any(tag == "text" for tag, _ in parsed.tags), "text must stay text"
    return parsed


def test_activation_svg_draws_both_panels_with_candidates_and_dashed_baselines() -> None:
    svg = plots.activation_svg({"c7": _curve(2.0), "gelu": _curve(1.0)}, {"gelu"})
    parsed = _check_inline(svg)
    text = " ".join(parsed.text)
    assert "f(x)" in text and "f′(x)" in text
    assert "c7" in text and "gelu (baseline)" in text
    assert "stroke-dasharray" in svg  # the baseline
    assert len(svg) < 150_000


def test_activation_svg_copes_with_gaps_blowups_and_hostile_labels() -> None:
    x, f, df = _curve(1.0)
    f = [math.nan if v < -0.5 else v for v in f]  # not finite there: a gap
    df = [1e12 if abs(v) < 1e-3 else v for v in df]  # a blow-up must not flatten the rest
    svg = plots.activation_svg({"$x<b>&": (x, f, df), "relu": _curve(3.0)}, {"relu"})
    _check_inline(svg)
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def _numbers(svg: str) -> list[float]:
    """Returns the figure's texts that are plain numbers (the tick labels)."""
    texts = [t.strip().replace("−", "-") for t in _parse(svg).text]
    return [float(t) for t in texts if re.fullmatch(r"-?\d+(\.\d+)?", t)]


def test_activation_svg_keeps_the_typical_curves_scale_whatever_a_candidate_returns() -> None:
    # torch.where(flag > 0.5, torch.sign(x) * 1e308, F.gelu(x)) with flag 1 in float64.
    huge = [math.copysign(1e308, x) if x else 0.0 for x in X]
    inf = [math.copysign(math.inf, x) if x else math.nan for x in X]
    curves = {
        "huge": (X, huge, [0.0] * N),  # f' is a constant
        "flat": (X, [1e300] * N, [-1e308] * N),
        "inf": (X, inf, [math.nan] * N),
        "empty": ([], [], []),
        "gelu": _curve(1.0),
        "relu": _curve(3.0),
    }
    svg = plots.activation_svg(curves, {"gelu", "relu"})
    text = " ".join(_check_inline(svg).text)
    assert "huge" in text and "flat" in text and "gelu (baseline)" in text
    # The y ticks are those of the baselines: ±1e308 does not flatten them.
    assert "e30" not in text and "10^" not in text
    assert max(abs(v) for v in _numbers(svg)) == 6.0  # the x ticks, -6..6
    # Each of them alone still draws: its own scale, or none.
    for label, curve in curves.items():
        _check_inline(plots.activation_svg({label: curve}, set()))
    _check_inline(plots.activation_svg({"nan": (X, [math.nan] * N, [math.inf] * N)}, set()))


def test_fitness_over_run_skips_failures_and_draws_the_reference() -> None:
    points: list[tuple[int, float | None]] = [(1, 0.4), (2, None), (3, -0.2), (4, 0.1), (5, -0.5)]
    text = " ".join(_check_inline(plots.fitness_over_run_svg(points, best_baseline=-0.3)).text)
    for label in ("best so far", "median so far", "reference (0)", "best baseline"):
        assert label in text
    assert "candidates evaluated" in text
    _check_inline(plots.fitness_over_run_svg([]))  # a run with nothing evaluated yet
    _check_inline(plots.fitness_over_run_svg([(1, None)]))
    huge: list[tuple[int, float | None]] = [(1, 1e308), (2, -1e308), (3, 0.1), (4, 1e308)]
    _check_inline(plots.fitness_over_run_svg(huge, best_baseline=-1e308))


def test_the_median_so_far_is_each_prefix_median() -> None:
    # Kept in two heaps (sorting every prefix was quadratic in the run's length).
    rng = random.Random(0)
    for n in range(0, 400, 7):
        values = [rng.choice([rng.uniform(-3, 3), 0.5, -1.0, 1e300, -1e300]) for _ in range(n)]
        medians = [statistics.median(values[: i + 1]) for i in range(n)]
        assert plots._running_medians(values) == medians


def test_heatmap_is_annotated_vector_cells_centred_on_zero() -> None:
    svg = plots.heatmap_svg(["c1", "relu"], ["sine", "product"], [[-1.25, 0.5], [0.0, None]])
    text = " ".join(_check_inline(svg).text)
    for label in ("-1.25", "+0.50", "+0.00", "—", "sine", "product", "c1", "relu"):
        assert label in text
    fills = re.findall(r"fill: (#[0-9a-f]{6})", svg)
    centre = to_hex(colormaps["RdBu_r"](0.5))
    assert fills.count(centre) == 1, "0 gets the middle colour"
    with pytest.raises(ValueError, match="2 rows of 2"):
        plots.heatmap_svg(["a", "b"], ["x", "y"], [[1.0, 2.0]])


def test_ids_differ_between_figures_so_they_can_share_a_page() -> None:
    a = plots.activation_svg({"c1": _curve(1.0)}, set())
    b = plots.fitness_over_run_svg([(1, 0.1), (2, -0.1)])
    ids_a = set(re.findall(r'\bid="([^"]+)"', a))
    ids_b = set(re.findall(r'\bid="([^"]+)"', b))
    assert ids_a and ids_b and not ids_a & ids_b
    # Every internal reference points at an id of its own figure.
    for svg, ids in ((a, ids_a), (b, ids_b)):
        assert set(re.findall(r'href="#([^"]+)"', svg)) <= ids
        assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= ids
    assert a == plots.activation_svg({"c1": _curve(1.0)}, set()), "same data, same SVG"


def test_help_and_the_report_modules_do_not_import_matplotlib() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from minact.cli import app\n"
        "import minact.report.build, minact.report.files, minact.jobs.report\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_fitness_over_run_draws_the_reference_at_its_own_fitness() -> None:
    # Under fitness "mean_ood_mse" the reference scores its mean OOD MSE, not 0.
    points: list[tuple[int, float | None]] = [(1, 30.5), (2, 41.0), (3, 28.4)]
    text = " ".join(_check_inline(plots.fitness_over_run_svg(points, 32.8, 37.69)).text)
    assert "reference (37.69)" in text and "reference (0)" not in text
    none = " ".join(_check_inline(plots.fitness_over_run_svg(points, None, None)).text)
    assert "reference" not in none  # no reference in the ranking: no line said to be one


def test_the_agreement_scatter_marks_the_reference_where_it_scored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under "mean_ood_mse" the reference's point is its own fitnesses, not (0, 0).
    from matplotlib.axes import Axes

    lines: list[tuple[str, float]] = []

    def recording(kind: str) -> Any:
        real = getattr(Axes, kind)

        def record(self: Axes, at: float = 0.0, *args: Any, **kwargs: Any) -> Any:
            lines.append((kind, at))
            return real(self, at, *args, **kwargs)

        return record

    for kind in ("axhline", "axvline"):
        monkeypatch.setattr(Axes, kind, recording(kind))
    points = [("relu", 37.7, 12.5, True), ("gelu", 30.1, 11.0, True), ("c1", 25.0, 14.0, False)]
    _check_inline(plots.agreement_svg(points, "was", "here", (37.7, 12.5)))
    assert sorted(lines) == [("axhline", 12.5), ("axvline", 37.7)]
    lines.clear()
    _check_inline(plots.agreement_svg(points, "was", "here", None))
    assert lines == []


def test_no_legend_searches_for_the_best_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # loc="best" tries every place against every point: over thousands of points on a busy
    # machine it took seconds and warned "Creating legend with loc='best' can be slow"
    # (an error under the tests' warning filter, a stray line in a user's terminal).
    from matplotlib.legend import Legend

    def searched(self: Legend, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a legend searched for the best place")

    monkeypatch.setattr(Legend, "_find_best_position", searched)
    rng = random.Random(0)
    points: list[tuple[int, float | None]] = [(i, rng.uniform(-1, 1)) for i in range(1, 3001)]
    _check_inline(plots.fitness_over_run_svg(points, best_baseline=-0.3))
    scatter = [(f"c{i}", rng.uniform(-1, 1), rng.uniform(-1, 1), i < 14) for i in range(300)]
    _check_inline(plots.agreement_svg(scatter, "lab fitness", "new fitness"))
    _check_inline(plots.activation_svg({"a": _curve(1.0), "relu": _curve(0.5)}, {"relu"}))
