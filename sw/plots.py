"""PNG figures of the demo and the bench, drawn with matplotlib's Agg backend and returned as bytes
(the run folders are written all at once by :mod:`eqprop.outputs`)."""

from __future__ import annotations

import io


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    pyplot().close(fig)
    return buffer.getvalue()


def learning_curves(histories: dict[str, list[list[dict]]], title: str = "") -> bytes:
    """Test accuracy per epoch (``method -> [history, ...]``, one history per seed): the mean over seeds
    with the seeds' range shaded; on the right the second half of training, zoomed in."""
    import numpy as np

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for method, runs in histories.items():
        epochs = np.array([h["epoch"] for h in runs[0]])
        accuracy = 100 * np.array([[h["test_accuracy"] for h in history] for history in runs])
        for ax, start in zip(axes, (0, len(epochs) // 2)):
            line = ax.plot(epochs[start:], accuracy.mean(0)[start:], marker="." if len(epochs) < 4 else None, label=method)
            if len(runs) > 1:
                ax.fill_between(epochs[start:], accuracy.min(0)[start:], accuracy.max(0)[start:], color=line[0].get_color(), alpha=0.15)
    for ax, what in zip(axes, ("all epochs", "second half")):
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{title}{': ' if title else ''}{what}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


def resource_bars(reports: dict[str, dict]) -> bytes:
    """Each board's resources as the percentage of its FPGA used (``board -> eqprop build report``)."""
    from .boards.build import soc_clock

    plt = pyplot()
    fig, axes = plt.subplots(1, len(reports), figsize=(3.6 * len(reports), 3), squeeze=False)
    for ax, (board, report) in zip(axes[0], reports.items()):
        kinds = [k for k, r in report["resources"].items() if r["available"]]
        used = [100 * report["resources"][k]["used"] / report["resources"][k]["available"] for k in kinds]
        bars = ax.bar(kinds, used, color="tab:blue")
        for bar, kind in zip(bars, kinds):
            r = report["resources"][kind]
            ax.annotate(f"{r['used']}/{r['available']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 115)
        ax.set_ylabel("% of the FPGA")
        clock = soc_clock(report)
        ax.set_title(f"{board}, P = {report['lanes']}\nSoC Fmax {clock['achieved']:.1f} MHz, runs at {clock['required']:.1f}", fontsize=8)
    fig.tight_layout()
    return png(fig)
