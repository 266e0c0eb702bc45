"""Weight merge vs basic GA for hyper-parameter search (Gonzalez & Varrun, Table 1).

For every task and repetition r (seed = base seed + r) the same search runs
twice — ``merge = false`` (basic: children start from a fresh initialisation)
and ``merge = true`` (children start from their parents' merged weights) —
with the same seed, so generation 0 (traits, weights, data split) is identical
and only the children differ.  Basic and merge runs are interleaved so that
drifts in the load of a shared machine hit both alike.

Written to OUT (default ``bench/results/merge``):

    table.md            the reference's table — average fitness time, skewness of the
                        fitness-time distribution, final metric (basic, merge) — with
                        the spread over repetitions, beside the reference's figures,
                        then the cost in epochs and the children-only figures
    results.json        every number, per run
    hist_<task>.png     fitness-time histograms, basic vs merge (all repetitions pooled)
    totals_<task>.png   total duration of every run, basic vs merge
    RUNS/<task>/<mode>-seed<S>/   the run directories (genreg hpo format; RUNS = --runs,
                        default a fresh temporary directory, so nothing large lands in the repo)

    python bench/bench_merge.py [--tasks mnist,boston,wine,trig] [--reps R] [--seed S]
                                [--out DIR] [--runs DIR] [--set KEY=VALUE ...] [--data-dir DIR]

The default budget (BUDGETS below) runs in about 10 minutes on 2 shared cores.
"""

from __future__ import annotations

import os

# Every fitness evaluation is a chain of small GEMMs: one BLAS thread avoids spinning worker
# threads fighting the other users of a shared machine (set the variables to override).
if __name__ == "__main__":  # before NumPy is imported
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import environment  # noqa: E402

from genreg.config import parse_overrides  # noqa: E402
from genreg.hpo.search import run_hpo  # noqa: E402
from genreg.hpo.config import hpo_from_mapping  # noqa: E402
from genreg.hpo.data import search_task as load_task  # noqa: E402

#: The search budget per task (HPOConfig keys); the same for basic and merge.
BUDGETS = {
    "mnist": {"population": 8, "generations": 5, "epochs": 12, "patience": 2, "mnist_train": 5000, "mnist_val": 1000},
    "boston": {"population": 10, "generations": 7, "epochs": 40, "patience": 3},
    "wine": {"population": 10, "generations": 7, "epochs": 40, "patience": 3},
    "trig": {"population": 10, "generations": 7, "epochs": 40, "patience": 3},
}
#: Default repetitions per task (MNIST is the expensive one).
REPS = {"mnist": 3, "boston": 5, "wine": 5, "trig": 5}
#: Gonzalez & Varrun, Table 1 (their Colab run, one run per algorithm).
REFERENCE = {
    "mnist": {"time": (70.7, 47.3), "skew": (1.709575, 4.503455), "result": (0.9641, 0.9745), "metric": "accuracy"},
    "boston": {"time": (15.8, 7.3), "skew": (0.231586, 1.732404), "result": (3.0085, 3.0086), "metric": "MAE"},
    "wine": {"time": (9.26, 6.65), "skew": (1.471797, 2.675971), "result": (0.4493, 0.4804), "metric": "MAE"},
}
MODES = ("basic", "merge")


def budget_text(task: str, cfg) -> str:
    text = f"P={cfg.population}, G={cfg.generations}, <={cfg.epochs} epochs (patience {cfg.patience})"
    if task == "mnist":
        text += f", {cfg.mnist_train} train / {cfg.mnist_val} val images (subset)"
    if task == "wine":
        text += f", {cfg.wine_color}"
    return text


def summarise(run) -> dict:
    """The numbers of one run (an HPOResult)."""
    ev = run.evaluations
    secs = np.array([e["fitness_seconds"] for e in ev])
    children = [e for e in ev if e["generation"] > 0]
    return {
        "fitness_seconds": secs.tolist(),
        "mean_fitness_seconds": float(secs.mean()),
        "mean_fitness_cpu_seconds": float(np.mean([e["fitness_cpu_seconds"] for e in ev])),
        "cpu_skewness": float(stats.skew([e["fitness_cpu_seconds"] for e in ev])),
        "children_mean_fitness_cpu_seconds": float(np.mean([e["fitness_cpu_seconds"] for e in children]))
        if children else math.nan,
        "skewness": float(stats.skew(secs)),
        "mean_epochs": float(np.mean([e["epochs"] for e in ev])),
        "children_mean_fitness_seconds": float(np.mean([e["fitness_seconds"] for e in children])) if children else math.nan,
        "children_mean_epochs": float(np.mean([e["epochs"] for e in children])) if children else math.nan,
        "children_seconds_per_epoch": float(np.mean([e["fitness_seconds"] / max(e["epochs"], 1) for e in children]))
        if children else math.nan,
        "children_median_init_metric": float(np.median([e["init_metric"] for e in children])) if children else math.nan,
        "children_median_metric": float(np.median([e["metric"] for e in children])) if children else math.nan,
        "val_metric": float(run.best.metric),
        "test_metric": float(run.test_metric),
        "total_seconds": float(run.total_seconds),
        "evaluations": len(ev),
        "generations_run": run.generations_run,
        "best_hidden_sizes": list(run.best.layout.sizes[1:-1]),
    }


def mean_sd(values, fmt="{:.3f}") -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def write_table(results: dict, path: Path, reps: dict, command: str) -> str:
    lines = [
        "# Weight merge vs basic GA: fitness time, skewness, final metric",
        "",
        f"Command: `{command}`",
        "",
        "Ours: mean ± standard deviation over R repetitions (seeds), one basic and one merge run per seed.",
        "Average time = mean wall time of a fitness evaluation (SGD training with early stopping + validation "
        "scoring), seconds. Skewness = scipy.stats.skew of the run's fitness-time distribution. Result = metric "
        "of the best individual (chosen on the validation split) on the held-out test split.",
        "",
        "| Dataset | budget | R | avg time (basic) | avg time (merge) | skew (basic) | skew (merge) "
        "| result (basic) | result (merge) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        b, m = r["runs"]["basic"], r["runs"]["merge"]
        metric = r["metric"]
        fmt = "{:.4f}" if metric in ("accuracy", "mae") else "{:.2e}"
        lines.append(
            f"| {task} (ours) | {r['budget']} | {reps[task]} "
            f"| {mean_sd([x['mean_fitness_seconds'] for x in b], '{:.3f}')} "
            f"| {mean_sd([x['mean_fitness_seconds'] for x in m], '{:.3f}')} "
            f"| {mean_sd([x['skewness'] for x in b], '{:.2f}')} | {mean_sd([x['skewness'] for x in m], '{:.2f}')} "
            f"| {metric} {mean_sd([x['test_metric'] for x in b], fmt)} | {metric} {mean_sd([x['test_metric'] for x in m], fmt)} |")
        ref = REFERENCE.get(task)
        if ref:
            lines.append(
                f"| {task} (reference) | Colab, full data | 1 | {ref['time'][0]} | {ref['time'][1]} "
                f"| {ref['skew'][0]} | {ref['skew'][1]} | {ref['metric']} {ref['result'][0]} "
                f"| {ref['metric']} {ref['result'][1]} |")
    lines += [
        "",
        "## Where the time goes (ours)",
        "",
        "Epochs = SGD epochs before early stopping (a noise-free measure of training cost). Children = "
        "generations >= 1 only (generation 0 is identical in both modes). Ratio = merge / basic per seed "
        "(paired), mean and range over seeds. s/epoch = a child's fitness time / its epochs (differs when the "
        "two searches drift to different architectures and batch sizes). Start = validation metric of a child's starting weights, median.",
        "",
        "| Dataset | epochs/eval (basic) | epochs/eval (merge) | child epochs (basic) | child epochs (merge) "
        "| child time ratio | child s/epoch (basic) | child s/epoch (merge) | child start (basic) "
        "| child start (merge) | total s (basic) | total s (merge) | val (basic) | val (merge) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        b, m = r["runs"]["basic"], r["runs"]["merge"]
        fmt = "{:.4f}" if r["metric"] in ("accuracy", "mae") else "{:.2e}"
        ratio = np.array([y["children_mean_fitness_seconds"] / x["children_mean_fitness_seconds"] for x, y in zip(b, m)])
        lines.append(
            f"| {task} | {mean_sd([x['mean_epochs'] for x in b], '{:.1f}')} | {mean_sd([x['mean_epochs'] for x in m], '{:.1f}')} "
            f"| {mean_sd([x['children_mean_epochs'] for x in b], '{:.1f}')} "
            f"| {mean_sd([x['children_mean_epochs'] for x in m], '{:.1f}')} "
            f"| {ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f}) "
            f"| {mean_sd([x['children_seconds_per_epoch'] for x in b], '{:.4f}')} "
            f"| {mean_sd([x['children_seconds_per_epoch'] for x in m], '{:.4f}')} "
            f"| {mean_sd([x['children_median_init_metric'] for x in b], fmt)} "
            f"| {mean_sd([x['children_median_init_metric'] for x in m], fmt)} "
            f"| {mean_sd([x['total_seconds'] for x in b], '{:.1f}')} | {mean_sd([x['total_seconds'] for x in m], '{:.1f}')} "
            f"| {mean_sd([x['val_metric'] for x in b], fmt)} | {mean_sd([x['val_metric'] for x in m], fmt)} |")
    lines += [
        "",
        "## CPU time (ours)",
        "",
        "CPU seconds of the process per fitness evaluation (time.process_time): the load other users put on a "
        "shared machine changes wall time far more than CPU time. Child CPU ratio = merge / basic per seed.",
        "",
        "| Dataset | CPU s/eval (basic) | CPU s/eval (merge) | CPU skew (basic) | CPU skew (merge) "
        "| child CPU s (basic) | child CPU s (merge) | child CPU ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        b, m = r["runs"]["basic"], r["runs"]["merge"]
        ratio = np.array([y["children_mean_fitness_cpu_seconds"] / x["children_mean_fitness_cpu_seconds"]
                          for x, y in zip(b, m)])
        lines.append(
            f"| {task} | {mean_sd([x['mean_fitness_cpu_seconds'] for x in b])} "
            f"| {mean_sd([x['mean_fitness_cpu_seconds'] for x in m])} "
            f"| {mean_sd([x['cpu_skewness'] for x in b], '{:.2f}')} | {mean_sd([x['cpu_skewness'] for x in m], '{:.2f}')} "
            f"| {mean_sd([x['children_mean_fitness_cpu_seconds'] for x in b])} "
            f"| {mean_sd([x['children_mean_fitness_cpu_seconds'] for x in m])} "
            f"| {ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f}) |")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def plot(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    colors = {"basic": "tab:blue", "merge": "tab:orange"}
    for task, r in results.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        pooled = {mode: np.concatenate([x["fitness_seconds"] for x in r["runs"][mode]]) for mode in MODES}
        edges = np.histogram_bin_edges(np.concatenate(list(pooled.values())), bins=25)
        for mode in MODES:
            ax.hist(pooled[mode], bins=edges, alpha=0.55, color=colors[mode],
                    label=f"{mode} (mean {pooled[mode].mean():.3f} s, skew {stats.skew(pooled[mode]):.2f})")
        ax.set_xlabel("fitness function time (s)")
        ax.set_ylabel("evaluations")
        ax.set_title(f"{task}: fitness-time histogram ({len(r['runs']['basic'])} repetitions pooled)")
        ax.legend()
        fig.tight_layout()
        written.append(out / f"hist_{task}.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(7, 4))
        n = len(r["runs"]["basic"])
        x = np.arange(n)
        for k, mode in enumerate(MODES):
            ax.bar(x + (k - 0.5) * 0.38, [y["total_seconds"] for y in r["runs"][mode]], width=0.38,
                   color=colors[mode], label=mode)
        ax.set_xticks(x)
        ax.set_xticklabels([f"seed {s}" for s in r["seeds"]])
        ax.set_ylabel("total duration of the search (s)")
        ax.set_title(f"{task}: total duration, basic vs merge")
        ax.legend()
        fig.tight_layout()
        written.append(out / f"totals_{task}.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="mnist,boston,wine,trig")
    parser.add_argument("--reps", type=int, help="repetitions for every task (default: per task, see REPS)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "merge"))
    parser.add_argument("--runs", help="where to keep the run directories (default: a new temporary directory)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every task")
    parser.add_argument("--data-dir", help="data root (default: $GENREG_DATA)")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    reps = {t: args.reps or REPS[t] for t in tasks}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="bench_merge_"))
    if runs_dir.exists() and any(runs_dir.iterdir()):
        raise SystemExit(f"{runs_dir} is not empty; choose another --runs")
    print(f"run directories: {runs_dir}")
    overrides = parse_overrides(args.set)
    command = "python bench/bench_merge.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {}
    t_all = time.perf_counter()
    for task in tasks:
        seeds = [args.seed + r for r in range(reps[task])]
        runs = {mode: [] for mode in MODES}
        cfg = None
        for seed in seeds:
            base = hpo_from_mapping({"task": task, "seed": seed, **BUDGETS[task], **overrides})
            data = load_task(base, args.data_dir)
            run_metric = base.resolved_metric(data.kind)
            for mode in MODES:
                cfg = base.replace(merge=(mode == "merge"))
                run = run_hpo(cfg, runs_dir / task / f"{mode}-seed{seed}", task=data)
                runs[mode].append(summarise(run))
                s = runs[mode][-1]
                print(f"{task:6s} seed {seed} {mode:5s}: mean fitness {s['mean_fitness_seconds']:.3f} s, "
                      f"skew {s['skewness']:.2f}, epochs {s['mean_epochs']:.1f}, test {run_metric} "
                      f"{s['test_metric']:.4g}, total {s['total_seconds']:.1f} s", flush=True)
        results[task] = {"metric": cfg.resolved_metric(), "budget": budget_text(task, cfg), "seeds": seeds,
                         "config": {k: v for k, v in cfg.to_dict().items() if k != "merge"}, "runs": runs}
    table = write_table(results, out / "table.md", reps, command)
    for path in plot(results, out):
        print(f"wrote {path}")
    with open(out / "results.json", "w") as fh:
        json.dump({"environment": {**environment(), "loadavg_at_end": os.getloadavg(),
                                   "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}, "command": command,
                   "seconds": time.perf_counter() - t_all, "reference": REFERENCE, "results": results},
                  fh, indent=1, default=float)
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'results.json'} in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
