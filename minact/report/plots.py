"""The report's figures as SVG text: the only module that imports matplotlib.

Plain numbers in, SVG text out: no files, no network, no fonts embedded (text stays
text), nothing rasterised. Each SVG is ready to inline in HTML: no XML header or
doctype, no metadata, and its element ids carry a prefix of its own so that several
figures in one page do not share ids. Import this module only when drawing:
matplotlib is slow to import and `minact --help` must stay fast.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import itertools
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, ever

from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from minact.curves import GRID
from minact.untrusted import printable

__all__ = ["activation_svg", "agreement_svg", "fitness_over_run_svg", "heatmap_svg"]

XRANGE = GRID[:2]  # the curves are drawn on the grid they were computed on
BASELINE_GREY = "#8a8a8a"
OFF_SCALE = 1e3  # a series this many times the size of a typical one does not set y limits
Y_BOUND = 1e300  # y limits stay within ±this: twice it is still a finite float
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text as <text>, no glyph outlines embedded
    "svg.hashsalt": "minact",  # stable ids, so the same data gives the same SVG
    "text.parse_math": False,  # a name is text: "a$b$" is drawn as it is, not as TeX
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def activation_svg(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    baselines: set[str],
) -> str:
    """Returns two panels, f and f', for {label: (x, f, df)}; baselines dashed and grey.

    Any float a candidate returns can arrive here (±1e308, inf, NaN, a constant, nothing):
    the y limits come from the curves of a typical size, and a curve beyond them is drawn
    running off the panel.
    """
    f_lim = _y_limits([curves[k][1] for k in curves])
    df_lim = _y_limits([curves[k][2] for k in curves])
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(10.0, 3.8))
        ax_f, ax_df = fig.subplots(1, 2)
        colours = matplotlib.colormaps["tab10"]
        greys = ["--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1))]
        ordered = [k for k in curves if k not in baselines] + [k for k in curves if k in baselines]
        n_new = len(curves) - len(baselines & set(curves))
        for i, label in enumerate(ordered):
            x, f, df = curves[label]
            shown = _label(label)
            style: dict[str, Any] = (
                {"color": colours(i % 10), "linewidth": 1.6, "label": shown}
                if i < n_new
                else {
                    "color": BASELINE_GREY,
                    "linewidth": 1.1,
                    "linestyle": greys[(i - n_new) % len(greys)],
                    "label": f"{shown} (baseline)",
                }
            )
            ax_f.plot(x, _clamp(f, f_lim), **style)
            ax_df.plot(x, _clamp(df, df_lim), **style)
        for ax, title, lim in ((ax_f, "f(x)", f_lim), (ax_df, "f′(x)", df_lim)):
            ax.set_title(title)
            ax.set_xlim(*XRANGE)
            ax.set_xlabel("x")
            ax.axhline(0.0, color="#cccccc", linewidth=0.6, zorder=0)
            ax.axvline(0.0, color="#cccccc", linewidth=0.6, zorder=0)
            if lim is not None:
                ax.set_ylim(*lim)
        if curves:
            ax_df.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.tight_layout()
        return _svg(fig)


def fitness_over_run_svg(
    points: Sequence[tuple[int, float | None]],
    best_baseline: float | None = None,
    reference: float | None = 0.0,
) -> str:
    """Returns best-so-far and median-so-far fitness against candidates evaluated.

    `points` are (candidates evaluated so far, fitness or None for a failure), in order;
    failures are skipped. Lower fitness is better; `reference` is the reference
    activation's fitness (0 for the mean log-ratio; its own mean OOD MSE under
    "mean_ood_mse"), dashed, and None draws no reference line.
    """
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 3.4))
        ax = fig.subplots()
        kept = [(n, f) for n, f in points if f is not None and math.isfinite(f)]
        xs = [n for n, _ in kept]
        values = [f for _, f in kept]
        best = list(itertools.accumulate(values, min))
        median = _running_medians(values)
        # One series: the reference belongs in the limits, whatever size the fitness is.
        ref = [reference] if reference is not None and math.isfinite(reference) else []
        lim = _y_limits([[*values, *ref]], keep_low=True) if values else None
        ax.scatter(xs, _clamp(values, lim), s=14, color="#777777", label="each candidate", zorder=3)
        style: dict[str, Any] = {"where": "post", "color": "#1f77b4", "linewidth": 1.8}
        ax.step(xs, _clamp(best, lim), label="best so far", **style)
        ax.plot(xs, _clamp(median, lim), color="#ff7f0e", linewidth=1.4, label="median so far")
        if ref:
            (y,) = _clamp(ref, lim)
            label = f"reference ({ref[0]:.4g})"
            ax.axhline(y, color="black", linewidth=0.8, linestyle="--", label=label)
        if best_baseline is not None:
            style = {"color": BASELINE_GREY, "linewidth": 0.8, "linestyle": ":"}
            (y,) = _clamp([best_baseline], lim)
            ax.axhline(y, label="best baseline", **style)
        ax.set_xlabel("candidates evaluated")
        ax.set_ylabel("fitness (lower is better)")
        if lim is not None:
            ax.set_ylim(*lim)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Beside the axes, not loc="best": that search takes seconds over thousands of
        # points and warns when it does (a load-dependent warning in a user's terminal).
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
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
            [_label(c) for c in cols],
            rotation=35,
            ha="right",
            rotation_mode="anchor",
        )
        ax.set_yticks([i + 0.5 for i in range(len(rows))], [_label(r) for r in rows])
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        return _svg(fig)


def agreement_svg(
    points: Sequence[tuple[str, float, float, bool]],
    xlabel: str,
    ylabel: str,
    reference: tuple[float, float] | None = (0.0, 0.0),
) -> str:
    """Returns a scatter of (name, x, y, is_baseline) points: baselines grey and named, new
    candidates blue (named too when there are few); the reference's (x, y) marked with
    dashed lines ((0, 0) under the mean log-ratio; None marks nothing)."""
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
                ax.annotate(
                    _label(name), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7
                )
        if reference is not None:
            ax.axvline(reference[0], color="black", linewidth=0.6, linestyle="--")
            ax.axhline(reference[1], color="black", linewidth=0.6, linestyle="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        # Beside the axes, not loc="best": that search takes seconds over thousands of
        # points and warns when it does (a load-dependent warning in a user's terminal).
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
        fig.tight_layout()
        return _svg(fig)


LABEL_CHARS = 40  # a longer name would leave no room for the axes (tight_layout fails)


def _label(text: str) -> str:
    """Returns a name as a figure shows it: its control characters escaped (a run's files
    may hold ESC sequences; the font has no glyph for them, and a warning would print
    them), clipped to LABEL_CHARS."""
    text = printable(text)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _y_limits(
    series: Sequence[Sequence[float]], keep_low: bool = False
) -> tuple[float, float] | None:
    """Returns y limits for `series`, or None when none holds a finite value.

    The limits leave out the top (and unless `keep_low`, bottom) 2% of many values, so
    that one blow-up does not flatten the rest; and a whole series over OFF_SCALE times
    the size of a typical one (the lower median) is left out of them, so that a curve at
    ±1e308 does not flatten the others. They stay within ±Y_BOUND, so that matplotlib's
    arithmetic on them (hi - lo, scaling to the page) cannot overflow.
    """
    kept = [f for s in series if (f := [v for v in s if math.isfinite(v)])]
    if not kept:
        return None
    sizes = [_size(f) for f in kept]
    # median_low is one of the sizes, so at least one series always stays.
    typical = max(statistics.median_low(sizes), 1.0)
    usual = [f for f, size in zip(kept, sizes, strict=True) if size <= OFF_SCALE * typical]
    finite = sorted(v for f in usual for v in f)
    cut = int(0.02 * len(finite)) if len(finite) >= 50 else 0
    lo = min(max(finite[0 if keep_low else cut], -Y_BOUND), Y_BOUND)
    hi = min(max(finite[-1 - cut], -Y_BOUND), Y_BOUND)
    pad = 0.08 * hi - 0.08 * lo  # not 0.08 * (hi - lo): that overflows for ±1e308
    if pad <= 1e-9 * max(abs(lo), abs(hi)):  # (nearly) constant: a span of its own size
        pad = max(0.5, 0.08 * max(abs(lo), abs(hi)))
    return lo - pad, hi + pad


def _size(values: Sequence[float]) -> float:
    """Returns the largest magnitude among `values` once the top and bottom 2% are left out."""
    ordered = sorted(values)
    cut = int(0.02 * len(ordered)) if len(ordered) >= 50 else 0
    return max(abs(ordered[cut]), abs(ordered[-1 - cut]))


def _clamp(values: Sequence[float], lim: tuple[float, float] | None) -> list[float]:
    """Returns `values` with those beyond `lim` (inf included) moved to a span past it.

    A curve beyond the limits is then drawn leaving the axes rather than vanishing, and no
    huge number reaches matplotlib's transforms, where it would overflow. NaN stays NaN:
    a gap.
    """
    if lim is None:
        return [v if math.isfinite(v) else math.nan for v in values]
    lo, hi = lim
    span = hi - lo
    return [v if math.isnan(v) else min(max(v, lo - span), hi + span) for v in values]


def _running_medians(values: Sequence[float]) -> list[float]:
    """Returns the median of each prefix of `values`, as statistics.median gives it."""
    # Two heaps, the lower half (negated) and the upper: the median of every prefix in
    # O(n log n). Sorting each prefix took 1.7 s for a run of 5000 candidates.
    low: list[float] = []
    high: list[float] = []
    out: list[float] = []
    for v in values:
        if low and v > -low[0]:
            heapq.heappush(high, v)
        else:
            heapq.heappush(low, -v)
        if len(low) > len(high) + 1:
            heapq.heappush(high, -heapq.heappop(low))
        elif len(high) > len(low):
            heapq.heappush(low, -heapq.heappop(high))
        out.append(-low[0] if len(low) > len(high) else (-low[0] + high[0]) / 2)
    return out


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
