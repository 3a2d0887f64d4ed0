"""Drawing the report's figures with matplotlib, as SVG: text drawn as paths, so a figure needs
no font, script or file at view time, and embeds in the one HTML file as it is.

Each function takes the figure data of figures.py and returns the SVG's text.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

from client_sut.report.figures import (  # noqa: E402
    Cdf,
    EjectionSpan,
    EndpointRow,
    RunRow,
    ServerSeries,
    SlaPoint,
    SweepPoint,
    Timeline,
)
from client_sut.result_files.sla import SlaLimits  # noqa: E402

LIMIT_STYLE = {"color": "#c0392b", "linestyle": "--", "linewidth": 1.2}
VERDICT_COLOURS = {"pass": "#27ae60", "fail": "#c0392b", "undecided": "#7f8c8d",
                   "aborted": "#8e44ad"}
plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "axes.grid": True,
                     "grid.alpha": 0.3, "figure.dpi": 100, "svg.hashsalt": "client-sut"})


def _svg(figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = out.getvalue()
    return text[text.index("<svg"):]  # inline: no XML declaration or doctype


def latency_cdfs(cdfs: Sequence[Cdf]) -> str:
    figure, axes = plt.subplots(1, len(cdfs), figsize=(3.2 * len(cdfs), 2.8))
    for ax, c in zip(axes, cdfs):
        ax.set_title(f"{c.name} (n={c.count:,})")
        ax.set_xlabel("ms")
        if not c.count:
            ax.text(0.5, 0.5, "no values", ha="center", transform=ax.transAxes)
            continue
        ax.plot(c.values_ms, c.fractions, color="#2c3e50")
        ax.set_ylim(0, 1.01)
        for pct, value in ((50, c.p50_ms), (99, c.p99_ms)):
            ax.plot([value], [pct / 100], "o", color="#2980b9", markersize=4)
            ax.annotate(f"p{pct} {value:,.1f}", (value, pct / 100), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
        if c.limit_ms is not None:
            ax.axvline(c.limit_ms, **LIMIT_STYLE, label=f"p99 limit {c.limit_ms:,.0f} ms")
            ax.legend(loc="lower right", fontsize=7)
        high = max(c.values_ms[-1], c.limit_ms or 0.0)
        if high > 20 * max(c.values_ms[0], 1e-3):  # a far limit or a long tail: log scale
            ax.set_xscale("log")
    axes[0].set_ylabel("fraction of requests (ITL: of gaps)")
    return _svg(figure)


def over_time(t: Timeline, ejections: Sequence[EjectionSpan] = ()) -> str:
    figure, axes = plt.subplots(4, 1, figsize=(10, 7.5), sharex=True)
    for span in ejections:  # a replica out of the balance: shaded on every axis
        for axis in axes:
            axis.axvspan(span.from_s, span.to_s, color="#c0392b", alpha=0.12, lw=0)
        axes[0].annotate(f"ejected: {span.endpoint}", (span.from_s, 1), xycoords=("data",
                         "axes fraction"), va="top", fontsize=7, color="#c0392b")
    axes[0].step(t.t_s, t.requests_per_s, where="post", color="#2c3e50")
    axes[0].set_ylabel("requests/s")
    axes[1].step(t.t_s, t.tokens_per_s, where="post", color="#8e44ad")
    axes[1].set_ylabel("tokens/s")
    axes[2].step(t.t_s, t.in_flight, where="post", color="#16a085")
    axes[2].set_ylabel("in flight")
    axes[3].plot(t.t_s, _nan(t.ttft_p50_ms), ".-", label="TTFT p50", color="#2980b9")
    axes[3].plot(t.t_s, _nan(t.ttft_p99_ms), ".-", label="TTFT p99", color="#e67e22")
    if t.ttft_limit_ms is not None:
        axes[3].axhline(t.ttft_limit_ms, **LIMIT_STYLE, label="p99 limit")
    axes[3].set_ylabel("TTFT ms (by send)")
    axes[3].legend(loc="upper right", fontsize=7)
    axes[3].set_xlabel("seconds from the first issue (1 s bins)")
    return _svg(figure)


def endpoints(rows: Sequence[EndpointRow]) -> str:
    figure, axes = plt.subplots(1, 3, figsize=(10, 2.2 + 0.3 * len(rows)))
    names = [row.url for row in rows]
    y = range(len(rows))
    axes[0].barh(y, [row.tokens_per_s for row in rows], color="#8e44ad")
    axes[0].set_title("tokens/s")
    axes[0].set_yticks(list(y), names)
    axes[1].barh(y, [row.requests for row in rows], color="#2c3e50", label="requests")
    axes[1].barh(y, [row.errors for row in rows], color="#c0392b", label="errors")
    axes[1].set_title("requests (errors red)")
    axes[1].set_yticks(list(y), [""] * len(rows))
    height = 0.4
    axes[2].barh([i - height / 2 for i in y], _zero(row.ttft_p99_ms for row in rows), height,
                 label="TTFT p99", color="#e67e22")
    axes[2].barh([i + height / 2 for i in y], _zero(row.tpot_p99_ms for row in rows), height,
                 label="TPOT p99", color="#2980b9")
    axes[2].set_title("p99 ms")
    axes[2].set_yticks(list(y), [""] * len(rows))
    axes[2].legend(fontsize=7)
    return _svg(figure)


def server_metrics(series: Sequence[ServerSeries], window_s: tuple[float, float],
                   client: Timeline) -> str:
    figure, axes = plt.subplots(4, 1, figsize=(10, 7.5), sharex=True)
    for s in series:
        axes[0].plot(s.t_s, _nan(s.running), ".-", label=f"running {s.endpoint}")
        axes[0].plot(s.t_s, _nan(s.waiting), "x--", label=f"waiting {s.endpoint}")
        axes[1].plot(s.t_s, _nan(s.kv_cache_pct), ".-", label=s.endpoint)
        axes[2].plot(s.t_s, _nan(s.generation_tokens_per_s), ".-", label=f"server {s.endpoint}")
    axes[2].step(client.t_s, client.tokens_per_s, where="post", color="#8e44ad", alpha=0.6,
                 label="client (all endpoints)")
    axes[3].plot(client.t_s, _nan(client.ttft_p99_ms), ".-", color="#e67e22",
                 label="client TTFT p99")
    if client.ttft_limit_ms is not None:
        axes[3].axhline(client.ttft_limit_ms, **LIMIT_STYLE, label="p99 limit")
    for ax, label in zip(axes, ("requests", "KV cache %", "tokens/s", "TTFT ms")):
        ax.set_ylabel(label)
        ax.axvspan(*window_s, color="#f1c40f", alpha=0.08)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7)
    axes[3].set_xlabel("seconds from the first issue (shaded: LoadGen's measured window)")
    return _svg(figure)


def sla(points: Sequence[SlaPoint], limits: SlaLimits, answer_qps: float | None) -> str:
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.2))

    def value(p: SlaPoint, attr: str) -> float | None:
        if attr == "tokens_per_s":
            return p.tokens_per_s
        return p.shown_p99(attr.split("_")[0])

    for ax, attr, limit, title in ((axes[0], "ttft_p99_ms", limits.ttft_ms, "TTFT p99 ms"),
                                   (axes[1], "tpot_p99_ms", limits.tpot_ms, "TPOT p99 ms"),
                                   (axes[2], "tokens_per_s", None, "tokens/s")):
        ordered = sorted((p for p in points if not p.confirmation), key=lambda p: p.target_qps)
        ax.plot([p.target_qps for p in ordered], _nan(value(p, attr) for p in ordered),
                color="#95a5a6", linewidth=1)
        for verdict, colour in VERDICT_COLOURS.items():
            chosen = [p for p in points if p.verdict == verdict and value(p, attr) is not None]
            if not chosen:
                continue
            ax.scatter([p.target_qps for p in chosen], [value(p, attr) for p in chosen],
                       color=colour, label=verdict, zorder=3,
                       marker="o", s=[60 if p.confirmation else 30 for p in chosen])
        stopped = [p for p in points if attr != "tokens_per_s" and p.lost is not None
                   and value(p, attr) is None]
        if stopped and limit is not None:  # over the limit by proof: drawn above it, not at a p99
            ax.scatter([p.target_qps for p in stopped], [limit * 1.05] * len(stopped),
                       marker="^", color=VERDICT_COLOURS["fail"], zorder=3,
                       label="stopped: over the limit")
        if limit is not None:
            ax.axhline(limit, **LIMIT_STYLE, label=f"limit {limit:,.0f}")
        if answer_qps is not None:
            ax.axvline(answer_qps, color="#27ae60", linewidth=1, alpha=0.6,
                       label=f"answer {answer_qps:g} QPS")
        ax.set_title(title)
        ax.set_xlabel("target QPS")
        ax.legend(fontsize=7)
    return _svg(figure)


REGION_SHADES = (("ultra_low", "#ecf0f1"), ("low", "#d6eaf8"), ("medium", "#d5f5e3"),
                 ("high", "#fdebd0"))


def sweep(points: Sequence[SweepPoint], step: Sequence[Sequence[float]],
          regions: dict | None) -> str:
    return _svg(sweep_figure(points, step, regions))


def sweep_figure(points: Sequence[SweepPoint], step: Sequence[Sequence[float]],
                 regions: dict | None):
    """The official Pareto step function over every point (the front's points filled), and
    system tokens/s, TTFT p90 and tokens/s per user against concurrency (the Endpoints regions
    shaded), and goodput against the load: two panels a row, each wide enough to read, every
    axis from zero (a flat line looks flat), points joined in order of concurrency or load."""
    figure, grid = plt.subplots(3, 2, figsize=(11, 10.5))
    axes = grid.flatten()
    axes[5].remove()
    pareto = axes[0]
    if step:
        pareto.plot([x for x, _ in step], [y for _, y in step], color="#2c3e50",
                    drawstyle="default", linewidth=1.2, label="front (official step function)")
    for point in points:
        if point.tokens_per_s_per_user is None:
            continue
        pareto.scatter(point.tokens_per_s_per_user, point.system_tokens_per_s, zorder=3,
                       color="#2980b9" if point.on_front else "white", edgecolor="#2980b9")
        pareto.annotate(point.name, (point.tokens_per_s_per_user, point.system_tokens_per_s),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    pareto.set_xlabel("tokens/s per user (1000 / TPOT p90)")
    pareto.set_title("system tokens/s against tokens/s per user")
    pareto.set_xlim(left=0)
    pareto.legend(fontsize=7)
    at_concurrency = sorted((p for p in points if p.concurrency is not None),
                            key=lambda p: p.concurrency)
    x = [p.concurrency for p in at_concurrency]
    for ax, attr, title in ((axes[1], "system_tokens_per_s", "system tokens/s"),
                            (axes[2], "ttft_p90_ms", "TTFT p90 ms"),
                            (axes[3], "tokens_per_s_per_user", "tokens/s per user")):
        ax.plot(x, _nan(getattr(p, attr) for p in at_concurrency), marker="o", color="#8e44ad")
        ax.set_title(f"{title} against concurrency")
        ax.set_xlabel("concurrency")
        if x and max(x) > 2 * min(x):
            ax.set_xscale("log", base=2)
        if regions:
            edges = (0.5, 32, regions["low_end"], regions["medium_end"], regions["c_max"])
            for (name, colour), low, high in zip(REGION_SHADES, edges, edges[1:]):
                ax.axvspan(low, high, color=colour, alpha=0.6, zorder=0, label=name)
    if regions:
        axes[1].legend(fontsize=7)
    loaded = sorted((p for p in points if p.requests_per_s is not None),
                    key=lambda p: p.requests_per_s)
    axes[4].plot([p.requests_per_s for p in loaded], _nan(p.goodput_per_s for p in loaded),
                 marker="o", color="#27ae60", label="within both limits")
    axes[4].plot([p.requests_per_s for p in loaded], [p.requests_per_s for p in loaded],
                 color="#95a5a6", linewidth=1, linestyle=":", label="every request")
    axes[4].set_title("goodput against the load, requests/s")
    axes[4].set_xlabel("requests/s served")
    axes[4].set_xlim(left=0)
    axes[4].legend(fontsize=7)
    for ax in axes[:5]:
        ax.set_ylim(bottom=0)
    figure.tight_layout()
    return figure


SWEEP_COLOURS = ("#2c3e50", "#e67e22", "#16a085", "#8e44ad", "#c0392b")


def sweeps_side_by_side(curves: Sequence[tuple[str, Sequence[SweepPoint],
                                               Sequence[Sequence[float]]]]) -> str:
    """Each sweep's official step function and points on one Pareto plane: (label, points,
    step function) per sweep, the baseline first."""
    figure, ax = plt.subplots(figsize=(7, 4))
    for number, (label, points, step) in enumerate(curves):
        colour = SWEEP_COLOURS[number % len(SWEEP_COLOURS)]
        if step:
            ax.plot([x for x, _ in step], [y for _, y in step], color=colour, linewidth=1.2,
                    label=label)
        drawn = [p for p in points if p.tokens_per_s_per_user is not None]
        ax.scatter([p.tokens_per_s_per_user for p in drawn],
                   [p.system_tokens_per_s for p in drawn], color=colour, zorder=3,
                   label=None if step else label)
    ax.set_xlabel("tokens/s per user (1000 / TPOT p90)")
    ax.set_ylabel("system tokens/s")
    ax.legend(fontsize=7)
    return _svg(figure)


def runs_side_by_side(rows: Sequence[RunRow]) -> str:
    figure, axes = plt.subplots(1, 3, figsize=(11, 0.6 + 0.45 * len(rows) + 1.5))
    y = list(range(len(rows)))
    labels = [row.label for row in rows]
    for ax, attr, title, colour in ((axes[0], "ttft_p99_ms", "TTFT p99 ms", "#e67e22"),
                                    (axes[1], "tpot_p99_ms", "TPOT p99 ms", "#2980b9"),
                                    (axes[2], "tokens_per_s", "tokens/s", "#8e44ad")):
        ax.barh(y, _zero(getattr(row, attr) for row in rows), color=colour)
        ax.set_title(title)
        ax.set_yticks(y, labels if ax is axes[0] else [""] * len(rows))
        ax.invert_yaxis()
    return _svg(figure)


def _nan(values) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _zero(values) -> list[float]:
    return [0.0 if v is None else v for v in values]
