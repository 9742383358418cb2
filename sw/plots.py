"""PNG figures of the demo and the bench, drawn with matplotlib's Agg backend and returned as bytes
(the run folders are written all at once by :func:`eqprop.checkpoint.write_run`)."""

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
    """Test accuracy per epoch: one colour per method, one line per seed (``method -> [history, ...]``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, runs) in enumerate(histories.items()):
        for seed, history in enumerate(runs):
            ax.plot([h["epoch"] for h in history], [100 * h["test_accuracy"] for h in history], color=colours[i % len(colours)],
                    alpha=0.8, marker="." if len(history) < 4 else None, label=method if seed == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy %")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
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
