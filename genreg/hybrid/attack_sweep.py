"""Attacks over several epsilons and several runs: the epsilon curve and mean / spread over seeds.

- ``run_sweep``: one run's three experiments at each epsilon of a list (the correct attack), plus
  the published attack at 0.05 (``attacks.published_fgsm``); writes ``attack_<method>_sweep.json``
  and ``.png`` (accuracy against epsilon).
- ``across_runs`` / ``sweep_across_runs``: reports of several runs grouped by network shape
  (e.g. horizontal and vertical), each experiment's per-run mean with its mean, sd, min and max
  over the runs; ``write_across_runs`` writes them as ``attack_<tag>_runs.json`` (and the sweep's
  ``attack_<method>_sweep_runs.png``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genreg.errors import ConfigError
from genreg.hybrid import attacks

#: The experiments of a report, by key: (label, where its accuracy is in the report).
EXPERIMENTS = {
    "members_clean": "members, clean",
    "self": "(a) each member, attack crafted on itself",
    "transfer": "(b) other members, attack crafted on one member",
    "best_self": "(a1) the best member, attack crafted on itself",
    "best_transfer": "(b1) other members, attack crafted on the best member",
    "children_clean": "children (untrained), clean",
    "children_transfer": "(c) other children, attack crafted on one child",
    "working_transfer": "(c') the same among working children",
    "working_source_transfer": "(c'') other children, attack crafted on a working child",
}


def parse_epsilons(text) -> list[float]:
    """``"0.02,0.05,0.1"`` -> [0.02, 0.05, 0.1] (sorted, distinct, each finite and in [0, 1])."""
    values = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--sweep expects comma-separated epsilons in [0, 1] such as 0.02,0.05,0.1; "
                              f"{part.strip()!r} is not a number") from None
        if not (np.isfinite(value) and 0 <= value <= 1):
            raise ConfigError(f"--sweep: epsilon {part.strip()} is outside [0, 1] (pixel units)")
        values.append(value)
    return sorted(set(values))


def headline(report: dict) -> dict:
    """Each experiment's mean accuracy in one ``attacks.attack_study`` report (None: no pair of working children)."""
    m, c = report["members"], report["children"]
    return {"members_clean": float(np.mean(m["clean"])), "self": m["self"]["mean"],
            "transfer": m["transfer"]["mean"], "best_self": m.get("best", {}).get("self"),
            "best_transfer": m.get("best", {}).get("transfer", {}).get("mean"),
            "children_clean": float(np.mean(c["clean"])),
            "children_transfer": c["transfer"]["mean"],
            "working_transfer": c["working_transfer"].get("mean"),
            "working_source_transfer": c["working_source_transfer"].get("mean"),
            "working_children": int(sum(c["working"]))}


def run_sweep(run_dir, epsilons, method="fgsm", steps=10, n_images=1000, n_children=None, data_dir=None,
              out_dir=None, children_as_published=False) -> tuple[dict, list[Path]]:
    """The three experiments at each epsilon, and the published attack at 0.05; writes the JSON and the curve.

    children_as_published: children bred as the notebook's (``attacks.breed_children``), files
    ``attack_<method>_sweep_notebook_children.*``."""
    if not epsilons:
        raise ConfigError("--sweep needs at least one epsilon")
    for e in epsilons:
        attacks._check_eps(e)
    attacks._check_method(method, False)
    study = attacks.load_study(run_dir, n_images, n_children, data_dir, children_as_published)
    points = [{"epsilon": e, **headline(attacks.attack_study(study, e, method, steps))} for e in epsilons]
    published = attacks.attack_study(study, attacks.PUBLISHED_EPSILON, "fgsm", 1, published=True)
    report = {k: study[k] for k in ("run_dir", "checkpoint", "generation")}
    report.update({"shape": study["layout"].shape_name(), "method": method, "steps": steps if method == "pgd" else 1,
                   "n_images": int(len(study["y"])), "epsilons": list(epsilons), "points": points,
                   "children_as_published": bool(children_as_published),
                   "published": {"epsilon": attacks.PUBLISHED_EPSILON,
                                 "effective_epsilon": published["effective_epsilon"], **headline(published)}})
    out_dir = Path(out_dir) if out_dir else Path(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"attack_{method}_sweep{'_notebook_children' if children_as_published else ''}"
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    from genreg.plots.hybrid import plot_attack_sweep

    return report, [path, plot_attack_sweep(sweep_across_runs([report]), out_dir / f"{stem}.png")]


def spread(values) -> dict:
    """Per-run values and their mean, sd (n - 1 in the denominator; 0 for one run), min and max."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not v.size:
        return {"runs": list(values)}
    return {"runs": list(values), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def _groups(reports: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in reports:
        groups.setdefault(r["shape"], []).append(r)
    return groups


def _header(reports: list[dict], keys) -> dict:
    first = reports[0]
    for k in keys:
        if any(r.get(k) != first.get(k) for r in reports):
            raise ConfigError(f"the runs' attacks differ in {k} ({sorted({str(r.get(k)) for r in reports})}); "
                              "summarise attacks of one kind")
    return {k: first.get(k) for k in keys}


def across_runs(reports: list[dict]) -> dict:
    """``attacks.attack_study`` reports of several runs: per network shape, each experiment's spread over runs."""
    out = _header(reports, ("method", "epsilon", "steps", "n_images", "published", "effective_epsilon",
                            "children_as_published"))
    out["groups"] = []
    for shape, rs in _groups(reports).items():
        heads = [headline(r) for r in rs]
        out["groups"].append({"shape": shape, "runs": [r["run_dir"] for r in rs],
                              "generations": [r["generation"] for r in rs],
                              **{k: spread([h[k] for h in heads]) for k in (*EXPERIMENTS, "working_children")}})
    return out


def sweep_across_runs(sweeps: list[dict]) -> dict:
    """``run_sweep`` reports of several runs: per network shape and epsilon, each experiment's spread over runs."""
    out = _header(sweeps, ("method", "steps", "n_images", "epsilons", "children_as_published"))
    out["groups"] = []
    for shape, rs in _groups(sweeps).items():
        points = [{"epsilon": e, **{k: spread([r["points"][i][k] for r in rs]) for k in EXPERIMENTS}}
                  for i, e in enumerate(out["epsilons"])]
        pub = {"epsilon": rs[0]["published"]["epsilon"], "effective_epsilon": rs[0]["published"]["effective_epsilon"],
               **{k: spread([r["published"][k] for r in rs]) for k in EXPERIMENTS}}
        out["groups"].append({"shape": shape, "runs": [r["run_dir"] for r in rs], "points": points, "published": pub})
    return out


def write_across_runs(summary: dict, out_dir, stem: str) -> list[Path]:
    """Write ``<stem>_runs.json`` (and, for a sweep, ``<stem>_runs.png``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}_runs.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    written = [path]
    if "epsilons" in summary:
        from genreg.plots.hybrid import plot_attack_sweep

        written.append(plot_attack_sweep(summary, out_dir / f"{stem}_runs.png"))
    return written


def _cell(s: dict) -> str:
    if "mean" not in s:
        return "-"
    if len(s["runs"]) == 1:
        return f"{100 * s['mean']:6.2f}%"
    return f"{100 * s['mean']:6.2f}% ± {100 * s['sd']:5.2f} [{100 * s['min']:5.2f}, {100 * s['max']:5.2f}]"


def format_across_runs(summary: dict) -> str:
    """A table per network shape: each experiment's mean ± sd [min, max] over the runs of its per-run mean."""
    if "epsilons" in summary:
        lines = [f"{summary['method'].upper()} sweep on {summary['n_images']} test images; accuracy, mean over runs"]
        for g in summary["groups"]:
            lines.append(f"{g['shape']} ({len(g['runs'])} runs)")
            lines.append("  epsilon  " + "  ".join(f"{k:>17}" for k in EXPERIMENTS))
            for p in [*g["points"], {**g["published"], "epsilon": "0.05 pub."}]:
                e = p["epsilon"] if isinstance(p["epsilon"], str) else f"{p['epsilon']:g}"
                lines.append(f"  {e:>7}  " + "  ".join(
                    f"{100 * p[k]['mean']:16.2f}%" if "mean" in p[k] else f"{'-':>17}" for k in EXPERIMENTS))
        return "\n".join(lines)
    attack = ("FGSM as published" if summary.get("published") else summary["method"].upper())
    lines = [f"{attack} epsilon={summary['epsilon']:g} on {summary['n_images']} test images; "
             "each experiment's mean accuracy, mean ± sd [min, max] over runs"]
    width = max(len(v) for v in EXPERIMENTS.values())
    for g in summary["groups"]:
        lines.append(f"{g['shape']} ({len(g['runs'])} runs)")
        lines += [f"  {label:<{width}}  {_cell(g[k])}" for k, label in EXPERIMENTS.items()]
    return "\n".join(lines)
