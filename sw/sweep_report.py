"""The table and plots of a sweep, from its stored points.

The table has one row per configuration with the seeds pooled (``training.seed`` is the one field
that is averaged over): the swept fields, the accuracies' mean and spread over the seeds, the
estimate's and the build's resources and training samples per second, the co-simulations that
passed, the stages that failed, and the cost axes on which the configuration is on the Pareto front.
The plots: accuracy against each swept field the training reads (mean and spread over seeds, one
line per combination of the other such fields), and per FPGA the Pareto front of accuracy against
LUTs, DSPs, RAM bits and training samples/s (from the build where one was made, else the estimate;
configurations the estimate says do not fit are drawn but never on the front).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable

from . import plots
from .checkpoint import to_json
from .outputs import OutputFiles
from .report import markdown_table, mean_std
from .sweep_spec import Row, SweepSpec

SEED = "training.seed"


@dataclass(frozen=True)
class Column:
    name: str
    stage: str
    #: The value from a point's record.
    get: Callable[[dict], Any]
    #: ``spread``: mean and spread over seeds; ``same``: one value (a stage that reads no seed);
    #: ``passed``: how many of the seeds' points passed.
    kind: str
    show: Callable[[Any], str] = str


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


COLUMNS = [
    Column("float_accuracy", "float-train", itemgetter("test_accuracy"), "spread", _pct),
    Column("fixed_accuracy", "fixed-train", itemgetter("test_accuracy"), "spread", _pct),
    Column("lut_estimate", "estimate", itemgetter("lut"), "same"),
    Column("dsp_estimate", "estimate", itemgetter("dsp"), "same"),
    Column("ram_bits_estimate", "estimate", itemgetter("ram_bits"), "same"),
    Column("samples_per_s_estimate", "estimate", itemgetter("samples_per_s"), "same", lambda v: f"{v:,.0f}"),
    Column("fits", "estimate", lambda record: record["refused"] is None, "same", lambda fits: "yes" if fits else "no"),
    Column("lut_built", "build", itemgetter("lut"), "same"),
    Column("dsp_built", "build", itemgetter("dsp"), "same"),
    Column("ram_bits_built", "build", itemgetter("ram_bits"), "same"),
    Column("fmax_mhz", "build", itemgetter("fmax_mhz"), "same", lambda v: f"{v:.1f}"),
    Column("samples_per_s_built", "build", itemgetter("samples_per_s"), "same", lambda v: f"{v:,.0f}"),
    Column("cosim_passed", "cosim", itemgetter("passed"), "passed"),
]
#: Pareto axes: the plot's label, the build's and the estimate's result field (samples/s: more is
#: better, the rest less), the table's name.
COSTS = [("LUTs", "lut", "LUT"), ("DSPs", "dsp", "DSP"), ("RAM bits", "ram_bits", "RAM"), ("training samples/s", "samples_per_s", "samples/s")]


@dataclass
class Group:
    """The configurations that differ only in their seed, and their stored points per stage."""

    values: dict[str, Any]
    fpga: str
    records: dict[str, list[dict]]

    def ok(self, stage: str) -> list[dict]:
        """The stage's distinct successful points (a stage that reads no seed has one for all seeds)."""
        distinct = {r["key"]: r for r in self.records.get(stage, []) if "error" not in r}
        return list(distinct.values())

    def failed(self) -> list[str]:
        return [stage for stage, records in self.records.items() if any("error" in r for r in records)]


def groups(spec: SweepSpec, configs: list[Row], row_points: list[dict[str, str]], records: dict[str, dict]) -> list[Group]:
    out: dict[str, Group] = {}
    for row, keys in zip(configs, row_points):
        values = {k: v for k, v in row.values.items() if k != SEED}
        group = out.setdefault(json.dumps(values, sort_keys=True), Group(values, row.config.hardware.fpga, {}))
        for stage, key in keys.items():
            group.records.setdefault(stage, []).append(records[key])
    return list(out.values())


def accuracy_stage(spec: SweepSpec) -> str | None:
    """The accuracy the plots and the front use: the chip's (fixed point) where it was trained, else float."""
    return next((s for s in ("fixed-train", "float-train") if s in spec.stages), None)


def accuracy(group: Group, stage: str | None) -> tuple[float, float] | None:
    values = [r["test_accuracy"] for r in group.ok(stage)] if stage else []
    return mean_std(values) if values else None


def cost(group: Group, field: str) -> tuple[float, bool] | None:
    """The cost ``field`` of the configuration and whether it fits: from its build where it has one, else its estimate."""
    for stage in ("build", "estimate"):
        found = group.ok(stage)
        if found:
            return found[0][field], found[0].get("refused") is None
    return None


def pareto_front(points: list[tuple[float, float]], more_is_better: bool) -> list[int]:
    """Indices of the ``(cost, accuracy)`` points no other point beats in both (ties: the first)."""
    sign = -1 if more_is_better else 1
    order = sorted(range(len(points)), key=lambda i: (sign * points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def fronts(groups_: list[Group], stage: str | None) -> dict[int, list[str]]:
    """For each group on a Pareto front of its FPGA: the cost axes it is on."""
    on: dict[int, list[str]] = {}
    for fpga in sorted({g.fpga for g in groups_}):
        for _, field, short in COSTS:
            members = [i for i, g in enumerate(groups_) if g.fpga == fpga and accuracy(g, stage) and (c := cost(g, field)) and c[1]]
            pts = [(cost(groups_[i], field)[0], accuracy(groups_[i], stage)[0]) for i in members]
            for j in pareto_front(pts, field == "samples_per_s"):
                on.setdefault(members[j], []).append(short)
    return on


def _cell(column: Column, group: Group) -> tuple[list, str]:
    """The column's CSV values and its markdown text for ``group``."""
    found = [column.get(r) for r in group.ok(column.stage)]
    if column.kind == "passed":
        n = len(group.records.get(column.stage, []))
        return [sum(map(bool, found))], f"{sum(map(bool, found))}/{n}"
    if not found:
        return ([None, None] if column.kind == "spread" else [None]), "-"
    if column.kind == "spread":
        mean, std = mean_std(found)
        return [mean, std], f"{column.show(mean)} ± {column.show(std)}"
    return [found[0]], column.show(found[0])


def table(spec: SweepSpec, groups_: list[Group]) -> tuple[str, str]:
    """The table as CSV and as markdown."""
    swept = [f for f in spec.swept if f != SEED]
    columns = [c for c in COLUMNS if c.stage in spec.stages]
    on_front = fronts(groups_, accuracy_stage(spec))
    csv_head = [*swept, "seeds", *(n for c in columns for n in ([f"{c.name}_mean", f"{c.name}_std"] if c.kind == "spread" else [c.name])),
                "pareto", "failed"]
    md_head = [*swept, "seeds", *(c.name for c in columns), "pareto", "failed"]
    csv_rows, md_rows = [], []
    for i, group in enumerate(groups_):
        cells = [_cell(c, group) for c in columns]
        seeds = max(len(records) for records in group.records.values())
        shown = [json.dumps(group.values[f]) if isinstance(group.values[f], (list, dict)) else group.values[f] for f in swept]
        tail = [",".join(on_front.get(i, [])), ",".join(group.failed())]
        csv_rows.append([*shown, seeds, *(v for values, _ in cells for v in values), *tail])
        md_rows.append([*shown, seeds, *(text for _, text in cells), *(t or "-" for t in tail)])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(csv_head)
    writer.writerows(csv_rows)
    return text.getvalue(), markdown_table(md_head, md_rows) + "\n"


def _label(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def accuracy_plot(spec: SweepSpec, configs: list[Row], row_points: list[dict[str, str]], records: dict[str, dict]) -> bytes | None:
    """Accuracy against each swept field the accuracy stage reads; None when there is none to plot."""
    from .sweep import reads

    stage = accuracy_stage(spec)
    if stage is None:
        return None
    fields = [f for f in spec.swept if f != SEED and reads(stage, f) and len({_label(r.values[f]) for r in configs}) > 1]
    if not fields:
        return None
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 3.4), squeeze=False)
    for ax, field in zip(axes[0], fields):
        others = [f for f in fields if f != field]
        series: dict[str, dict[str, dict[str, float]]] = {}  # other fields' values -> x -> point key -> accuracy
        for row, keys in zip(configs, row_points):
            record = records[keys[stage]]
            if "error" not in record:
                name = ", ".join(f"{f.split('.', 1)[-1]}={_label(row.values[f])}" for f in others)  # without the section
                series.setdefault(name, {}).setdefault(_label(row.values[field]), {})[keys[stage]] = record["test_accuracy"]
        xs = sorted({x for s in series.values() for x in s}, key=_sort_key)
        for name, by_x in sorted(series.items()):
            at = [x for x in xs if x in by_x]
            stats = [mean_std(list(by_x[x].values())) for x in at]
            ax.errorbar([xs.index(x) for x in at], [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats],
                        marker="o", capsize=3, label=name or None)
        ax.set_xticks(range(len(xs)), xs)
        ax.set_xlabel(field)
        ax.set_ylabel(f"{stage.split('-')[0]} test accuracy %")
        if 1 < len(series) <= 8:
            ax.legend(fontsize=6)
    fig.suptitle("mean and spread over seeds", fontsize=9)
    fig.tight_layout()
    return plots.png(fig)


def _sort_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def pareto_plot(spec: SweepSpec, groups_: list[Group]) -> bytes | None:
    """Per FPGA, accuracy against each cost axis with the front drawn; None without accuracy and cost."""
    stage = accuracy_stage(spec)
    fpgas = sorted({g.fpga for g in groups_ if accuracy(g, stage) and cost(g, "lut")})
    if not fpgas:
        return None
    plt = plots.pyplot()
    fig, axes = plt.subplots(len(fpgas), len(COSTS), figsize=(3.4 * len(COSTS), 3 * len(fpgas)), squeeze=False)
    for ax_row, fpga in zip(axes, fpgas):
        mine = [g for g in groups_ if g.fpga == fpga and accuracy(g, stage) and cost(g, "lut")]
        for ax, (label, field, _) in zip(ax_row, COSTS):
            pts = [(cost(g, field)[0], 100 * accuracy(g, stage)[0], cost(g, field)[1]) for g in mine]
            fitting = [(c, a) for c, a, fits in pts if fits]
            ax.scatter([c for c, a, fits in pts if not fits], [a for c, a, fits in pts if not fits], marker="x", color="0.7", label="does not fit")
            ax.scatter([c for c, _ in fitting], [a for _, a in fitting], color="tab:blue", alpha=0.4, label="fits")
            front = sorted((fitting[i] for i in pareto_front(fitting, field == "samples_per_s")))
            ax.step([c for c, _ in front], [a for _, a in front], where="post" if field != "samples_per_s" else "pre",
                    color="tab:red", marker="o", label="Pareto front")
            ax.set_xlabel(label + (" (more is better)" if field == "samples_per_s" else ""))
            ax.set_ylabel(f"{stage.split('-')[0]} accuracy %")
            ax.set_title(fpga, fontsize=8)
        ax_row[0].legend(fontsize=6)
    fig.tight_layout()
    return plots.png(fig)


def write_report(out: Path, spec: SweepSpec, configs: list[Row], row_points: list[dict[str, str]], records: dict[str, dict]) -> list[str]:
    """Write the table (CSV, markdown), ``sweep.json`` and the plots there are data for; returns their names."""
    groups_ = groups(spec, configs, row_points, records)
    csv_text, md_text = table(spec, groups_)
    files: dict[str, str | bytes] = {
        "table.csv": csv_text, "table.md": md_text,
        "sweep.json": to_json({"spec": spec.to_dict(),
                               "configurations": [{"values": r.values, "points": keys} for r, keys in zip(configs, row_points)]}),
    }
    for name, figure in (("accuracy.png", accuracy_plot(spec, configs, row_points, records)), ("pareto.png", pareto_plot(spec, groups_))):
        if figure is not None:
            files[name] = figure
    stale = [out / name for name in ("accuracy.png", "pareto.png") if name not in files]
    OutputFiles([out / name for name in files], "sweep table").write(list(files.values()))
    for path in stale:  # an earlier run's plot that this sweep has no data for
        path.unlink(missing_ok=True)
    return list(files)
