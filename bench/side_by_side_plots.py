"""The PNG plots of ``bench/side_by_side.py``: throughput bars and latency distributions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

COLORS = {"paynotify": "#1f77b4", "seed": "#d62728"}
MIXES = ("unique", "duplicates")


def plot_all(results: dict[str, Any], out: Path) -> list[Path]:
    """Write throughput.png, ack_latency.png and e2e_latency.png into ``out``; return them."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        throughput(results, out / "side_by_side_throughput.png"),
        ack_latency(results, out / "side_by_side_ack_latency.png"),
        e2e_latency(results, out / "side_by_side_e2e_latency.png"),
    ]


def throughput(results: dict[str, Any], path: Path) -> Path:
    """Bars of the median acknowledged notifications/s per mix, one dot per run."""
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for k, (system, data) in enumerate(results["systems"].items()):
        for m, mix in enumerate(MIXES):
            runs = [r["acked_per_s"] for r in data["throughput"][mix]["runs"]]
            x = m + (k - 0.5) * width
            median = data["throughput"][mix]["acked_per_s"]
            ax.bar(x, median, width, color=COLORS[system], label=system if m == 0 else None)
            ax.scatter([x] * len(runs), runs, color="black", s=10, zorder=3)
            ax.annotate(f"{median:,.0f}", (x, median), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(MIXES)), ["all unique", "30% duplicates"])
    ax.set_ylabel("acknowledged notifications/s (median; dots = runs)")
    ax.set_title("Full load (wrk -c64), same pre-signed Alipay notifications")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ack_latency(results: dict[str, Any], path: Path) -> Path:
    """wrk's latency percentiles at full load (median run), per system and mix."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for system, data in results["systems"].items():
        for mix, style in zip(MIXES, ("-", "--"), strict=True):
            run = data["throughput"][mix]["median_run"]
            points = [(ms, float(p)) for p, ms in run["percentiles_ms"]]
            ax.plot(
                [ms for ms, _ in points],
                [p for _, p in points],
                style,
                marker="o",
                markersize=3,
                color=COLORS[system],
                label=f"{system}, {mix}",
            )
    title = "Acknowledgement latency at full load (wrk percentiles, median run)"
    return _save_log_x(fig, ax, path, title, "acknowledgement latency, ms (log)", "percentile")


def e2e_latency(results: dict[str, Any], path: Path) -> Path:
    """Empirical CDFs of notification-to-database latency at the fixed rate (and the ack's)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for system, data in results["systems"].items():
        fixed = data["fixed_rate"]
        for name, style in (("e2e_ms", "-"), ("ack_ms", ":")):
            values = sorted(fixed[name])
            if not values:
                continue
            ys = [(i + 1) / len(values) * 100 for i in range(len(values))]
            label = f"{system}, {'sent -> paid in DB' if name == 'e2e_ms' else 'sent -> acked'}"
            ax.plot(values, ys, style, color=COLORS[system], label=label)
    rate = next(iter(results["systems"].values()))["fixed_rate"]["rate"]
    title = f"Notification to database at {rate:.0f}/s (polled every 10 ms)"
    return _save_log_x(fig, ax, path, title, "ms (log)", "% of notifications")


def _save_log_x(fig: Figure, ax: Axes, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
