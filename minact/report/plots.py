"""The report's figures as SVG text: the only module that imports matplotlib.

Plain numbers in, SVG text out: no files, no network, no fonts embedded (text stays
text), nothing rasterised. Each SVG is ready to inline in HTML: no XML header or
doctype, no metadata, and its element ids carry a prefix of its own so that several
figures in one page do not share ids. Import this module only when drawing:
matplotlib is slow to import and `minact --help` must stay fast.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, ever

from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from minact.curves import GRID

__all__ = ["activation_svg", "agreement_svg", "fitness_over_run_svg", "heatmap_svg"]

XRANGE = GRID[:2]  # the curves are drawn on the grid they were computed on
BASELINE_GREY = "#8a8a8a"
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text as <text>, no glyph outlines embedded
    "svg.hashsalt": "minact",  # stable ids, so the same data gives the same SVG
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def activation_svg(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    baselines: set[str],
) -> str:
    """Returns two panels, f and f', for {label: (x, f, df)}; baselines dashed and grey."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(10.0, 3.8))
        ax_f, ax_df = fig.subplots(1, 2)
        colours = matplotlib.colormaps["tab10"]
        greys = ["--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1))]
        ordered = [k for k in curves if k not in baselines] + [k for k in curves if k in baselines]
        n_new = len(curves) - len(baselines & set(curves))
        for i, label in enumerate(ordered):
            x, f, df = curves[label]
            style: dict[str, Any] = (
                {"color": colours(i % 10), "linewidth": 1.6, "label": label}
                if i < n_new
                else {
                    "color": BASELINE_GREY,
                    "linewidth": 1.1,
                    "linestyle": greys[(i - n_new) % len(greys)],
                    "label": f"{label} (baseline)",
                }
            )
            ax_f.plot(x, f, **style)
            ax_df.plot(x, df, **style)
        for ax, title in ((ax_f, "f(x)"), (ax_df, "f′(x)")):
            ax.set_title(title)
            ax.set_xlim(*XRANGE)
            ax.set_xlabel("x")
            ax.axhline(0.0, color="#cccccc", linewidth=0.6, zorder=0)
            ax.axvline(0.0, color="#cccccc", linewidth=0.6, zorder=0)
            _clip_y(ax, [curves[k][1 if ax is ax_f else 2] for k in curves])
        if curves:
            ax_df.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.tight_layout()
        return _svg(fig)


def fitness_over_run_svg(
    points: Sequence[tuple[int, float | None]], best_baseline: float | None = None
) -> str:
    """Returns best-so-far and median-so-far fitness against candidates evaluated.

    `points` are (candidates evaluated so far, fitness or None for a failure), in order;
    failures are skipped. Lower fitness is better; the reference activation is 0.
    """
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 3.4))
        ax = fig.subplots()
        xs: list[int] = []
        values: list[float] = []
        best: list[float] = []
        median: list[float] = []
        for n, fitness in points:
            if fitness is None or not math.isfinite(fitness):
                continue
            values.append(fitness)
            xs.append(n)
            best.append(min(values))
            median.append(statistics.median(values))
        ax.scatter(xs, values, s=14, color="#777777", label="each candidate", zorder=3)
        ax.step(xs, best, where="post", color="#1f77b4", linewidth=1.8, label="best so far")
        ax.plot(xs, median, color="#ff7f0e", linewidth=1.4, label="median so far")
        ax.axhline(0.0, color="black", linewidth=0.8, linestyle="--", label="reference (0)")
        if best_baseline is not None:
            style: dict[str, Any] = {"color": BASELINE_GREY, "linewidth": 0.8, "linestyle": ":"}
            ax.axhline(best_baseline, label="best baseline", **style)
        ax.set_xlabel("candidates evaluated")
        ax.set_ylabel("fitness (lower is better)")
        if values:
            _clip_y(ax, [values, [0.0]], keep_low=True)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        return _svg(fig)


def heatmap_svg(rows: list[str], cols: list[str], values: list[list[float | None]]) -> str:
    """Returns a rows × cols grid of log-ratios, diverging colours centred on 0, annotated."""
    if len(values) != len(rows) or any(len(v) != len(cols) for v in values):
        raise ValueError(f"heatmap values must be {len(rows)} rows of {len(cols)} numbers")
    finite = [abs(v) for row in values for v in row if v is not None and math.isfinite(v)]
    limit = max(finite, default=1.0) or 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    cmap = matplotlib.colormaps["RdBu_r"]  # blue: better than the reference, red: worse
    with matplotlib.rc_context(_STYLE):
        width = 2.2 + 0.75 * max(1, len(cols))
        fig = Figure(figsize=(width, 0.9 + 0.3 * max(1, len(rows))))
        ax = fig.subplots()
        # Rectangles rather than imshow: an image would be embedded as a raster.
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                colour: str | tuple[float, ...]
                if v is None or not math.isfinite(v):
                    colour, text, dark = "#eeeeee", "—", False
                else:
                    colour, text, dark = cmap(norm(v)), f"{v:+.2f}", abs(v) > 0.6 * limit
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white"))
                style: dict[str, Any] = {"ha": "center", "va": "center", "fontsize": 7}
                ax.text(j + 0.5, i + 0.5, text, color="white" if dark else "black", **style)
        ax.set_xlim(0, len(cols))
        ax.set_ylim(len(rows), 0)
        ax.set_xticks(
            [j + 0.5 for j in range(len(cols))],
            cols,
            rotation=35,
            ha="right",
            rotation_mode="anchor",
        )
        ax.set_yticks([i + 0.5 for i in range(len(rows))], rows)
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        return _svg(fig)


def agreement_svg(
    points: Sequence[tuple[str, float, float, bool]], xlabel: str, ylabel: str
) -> str:
    """Returns a scatter of (name, x, y, is_baseline) points: baselines grey and named, new
    candidates blue (named too when there are few); the reference (0, 0) marked."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 5.0))
        ax = fig.subplots()
        groups = ((True, BASELINE_GREY, "baselines"), (False, "#1f77b4", "new candidates"))
        for baseline, colour, label in groups:
            xs = [x for _, x, _, b in points if b == baseline]
            ys = [y for _, _, y, b in points if b == baseline]
            if xs:
                ax.scatter(xs, ys, s=22, color=colour, label=label, zorder=3)
        few = sum(1 for p in points if not p[3]) <= 8
        for name, x, y, baseline in points:
            if baseline or few:
                ax.annotate(name, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.axhline(0.0, color="black", linewidth=0.6, linestyle="--")
        ax.axvline(0.0, color="black", linewidth=0.6, linestyle="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        return _svg(fig)


def _clip_y(ax: Axes, series: Sequence[Sequence[float]], keep_low: bool = False) -> None:
    """Sets y limits that leave out the top (and unless `keep_low`, bottom) 2% of many values,
    so that one blow-up does not flatten the rest."""
    finite = sorted(v for s in series for v in s if math.isfinite(v))
    if not finite:
        return
    cut = int(0.02 * len(finite)) if len(finite) >= 50 else 0
    lo = finite[0 if keep_low else cut]
    hi = finite[-1 - cut]
    pad = 0.08 * (hi - lo) or 0.5
    ax.set_ylim(lo - pad, hi + pad)


def _svg(fig: Figure) -> str:
    """Returns the figure as inline-ready SVG text with ids unique to this figure."""
    buf = io.StringIO()
    metadata = {"Format": None, "Type": None, "Creator": None, "Date": None}
    fig.savefig(buf, format="svg", metadata=metadata)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    prefix = "s" + hashlib.sha256(text.encode()).hexdigest()[:8] + "-"
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m[1]}"', text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m[1]}"', text)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m[1]})", text)
