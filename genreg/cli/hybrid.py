"""``genreg hybrid`` and ``genreg attack``: argument parsing and command logic for hybrid runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from genreg.cli import common


def cmd_hybrid(args: argparse.Namespace) -> int:
    from genreg.hybrid.config import from_mapping
    from genreg.hybrid.run import start_hybrid

    alias = common.resume_alias(args, "hybrid")
    if alias is not None:
        return alias
    t0 = time.perf_counter()
    mapping = common.config_mapping(args, ("seed", "generations", "task", "target"))
    cfg = from_mapping(mapping)
    task = "" if cfg.task == "mnist" else Path(cfg.task.partition(":")[2] or cfg.task).stem + "-"
    run_dir = Path(args.out) if args.out else Path("runs") / (
        f"hybrid-{task}{cfg.architecture.replace('|', '_')}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    common.ensure_data(cfg.task, args.data_dir, run_dir)
    print(f"run directory: {run_dir}")
    result = start_hybrid(cfg, run_dir, args.data_dir, progress=not args.no_progress)
    return report_hybrid(result, run_dir, t0)


def report_hybrid(result: dict, run_dir, t0: float) -> int:
    """Print a hybrid run's final table (or where it stopped)."""
    from genreg.hybrid.run import format_result

    if "stopped_at" in result:
        print(f"stopped after generation {result['stopped_at']} (generations are numbered from 1; 0 is the "
              f"founders); continue with: genreg resume {run_dir}")
        return 0
    print(format_result(result))
    print(f"total {time.perf_counter() - t0:.1f} s (population {result['population_seconds']:.1f} s); "
          f"wrote {Path(run_dir) / 'result.json'}")
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from genreg.errors import ConfigError
    from genreg.hybrid import attack_sweep as sweep
    from genreg.hybrid.attacks import (_check_eps, _check_method, attack_tag, format_transfer, run_attacks,
                                        study_inputs)

    runs = args.run_dir
    if len(runs) > 1 and not args.out:
        raise ConfigError(f"{len(runs)} RUN_DIRs: give --out DIR for the summary across them (each run's own "
                          "files go into its RUN_DIR)")
    if len(set(runs)) < len(runs):
        raise ConfigError("a RUN_DIR is given twice")
    if args.sweep is not None and args.as_published:
        raise ConfigError("--sweep draws the correct attack and marks the published one at 0.05 itself; "
                          "drop --as-published")
    epsilons = sweep.parse_epsilons(args.sweep) if args.sweep is not None else None
    _check_eps(args.epsilon)  # bad options fail before the first run is loaded
    _check_method(args.method, args.as_published)
    own = args.out if len(runs) == 1 else None
    if len(runs) > 1:  # every run is checked before the first is attacked (nothing half-written)
        for run in runs:
            study_inputs(run, args.images, args.data_dir)
    t0 = time.perf_counter()
    reports = []
    for run in runs:
        t = time.perf_counter()
        if epsilons is not None:
            report, written = sweep.run_sweep(run, epsilons, method=args.method, steps=args.steps,
                                              n_images=args.images, n_children=args.children,
                                              data_dir=args.data_dir, out_dir=own,
                                              children_as_published=args.children_as_published)
        else:
            report, written = run_attacks(run, epsilon=args.epsilon, method=args.method, steps=args.steps,
                                          n_images=args.images, n_children=args.children, data_dir=args.data_dir,
                                          out_dir=own, published=args.as_published,
                                          children_as_published=args.children_as_published)
            print(format_transfer(report))
        reports.append(report)
        for path in written:
            print(f"wrote {path}")
        print(f"{run}: {time.perf_counter() - t:.1f} s")
    if epsilons is not None or len(runs) > 1:
        summary = (sweep.sweep_across_runs(reports) if epsilons is not None else sweep.across_runs(reports))
        print(sweep.format_across_runs(summary))
        if len(runs) > 1:
            nb = "_notebook_children" if args.children_as_published else ""
            stem = f"attack_{args.method}_sweep{nb}" if epsilons is not None else \
                f"attack_{attack_tag(args.method, args.epsilon, args.as_published, args.children_as_published)}"
            for path in sweep.write_across_runs(summary, args.out, stem):
                print(f"wrote {path}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


def add_hybrid_commands(sub) -> None:
    """Register ``hybrid`` and ``attack`` on the ``genreg`` sub-parser collection."""
    from genreg.hybrid.config import HybridConfig, describe_keys

    p = common.add_command(
        sub, "hybrid",
        "Hybrid mode: each generation, children get every gene (layer, parallel block, or block of "
        "input rows) whole from one of two parents drawn from the best half, 10% fresh random networks join, "
        "every network trains E epochs of SGD, the best P by validation accuracy (or MSE, on a regression --task) "
        "survive. Writes a run directory "
        "(config, metrics.csv, HDF5 checkpoints, per-gene similarity matrices) and, at the end, the test "
        "accuracy of the best network next to a baseline trained alone for the same epochs. "
        "Generation 0 is the untrained founders; --generations N trains generations 1..N. "
        "Ctrl-C checkpoints and exits; `genreg resume RUN_DIR` continues.",
        "genreg hybrid --generations 6 --seed 0 --set population=10 --out runs/hybrid-small",
        "config keys (defaults reproduce the protocol of the hybrid study):\n" + describe_keys(),
    )
    common.add_config(p, "architecture=vertical")
    common.add_seed(p)
    common.add_task(p, HybridConfig.task)
    common.add_generations(p)
    common.add_run_out(p, "runs/hybrid-<architecture>-seed<S>-<time>")
    common.add_no_progress(p)
    common.add_data_dir(p)
    common.add_resume_alias(p)
    p.set_defaults(func=cmd_hybrid)

    p = common.add_command(
        sub, "attack",
        "Craft adversarial test images (FGSM, or PGD with --steps) on members of a hybrid run's final "
        "population and measure: (a) each model under attacks crafted on itself, (b) every other member under "
        "an attack crafted on one member, (c) fresh children of the final population under an attack crafted "
        "on another child. The images are the test images of the run's task (mnist or fashion-mnist). Prints a table "
        "and writes attack_<method>_eps<epsilon>.json (the numbers) and attack_<method>_eps<epsilon>.png (source x "
        "target heat-maps) into --out. --as-published runs FGSM as the hybrid study's notebook did (files "
        "attack_fgsm_published_eps<epsilon>.*): epsilon added after 'denormalising' [0, 1] images with MNIST's mean "
        "0.1307 and std 0.3081, i.e. epsilon / 0.3081 on the network's input with no clip that binds, and images the "
        "source misclassifies left unattacked. --sweep E1,E2,... measures the three experiments at each epsilon and "
        "the published attack at 0.05, and writes attack_<method>_sweep.json and .png (accuracy against epsilon). "
        "With several RUN_DIRs each run's files go into its RUN_DIR and the summary over the runs (grouped by "
        "network shape: mean, sd, min, max of each experiment) into --out: attack_<method>_eps<epsilon>_runs.json, "
        "attack_fgsm_published_eps<epsilon>_runs.json, or attack_<method>_sweep_runs.json and .png. "
        "--children-as-published breeds the children as the notebook's child experiment did (genes of 64 input "
        "rows of each weight matrix, parents drawn from all members; file names end in _notebook_children).",
        "genreg attack runs/hybrid-small --method pgd --epsilon 0.1 --images 500\n"
        "  genreg attack runs/hybrid-small --as-published\n"
        "  genreg attack runs/hybrid-small --as-published --children-as-published\n"
        "  genreg attack runs/hybrid-seed0 runs/hybrid-seed1 --sweep 0.02,0.05,0.1,0.2 --out docs/sweep",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="+", help="hybrid run directories (one or more)")
    p.add_argument("--epsilon", type=float, default=0.05, metavar="EPS",
                   help="L-infinity budget in pixel units of [0, 1] (default: %(default)s)")
    p.add_argument("--method", choices=("fgsm", "pgd"), default="fgsm", help="the attack (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, metavar="K",
                   help="PGD steps, each of 2.5 * epsilon / steps (default: %(default)s)")
    p.add_argument("--images", type=int, default=1000, metavar="N",
                   help="test images attacked, the first N (default: %(default)s)")
    p.add_argument("--children", type=int, default=None, metavar="C",
                   help="fresh children bred from the final population (default: the population size)")
    p.add_argument("--as-published", action="store_true",
                   help="FGSM as the hybrid study published it: epsilon / 0.3081 on [0, 1] pixels, unclipped, images "
                        "the source misclassifies unattacked; without it, the correct attack")
    p.add_argument("--children-as-published", action="store_true",
                   help="breed the children as the notebook's child experiment: two distinct parents drawn uniformly "
                        "from all members and genes of 64 input rows of each weight matrix (each bias one gene), "
                        "the nearest genreg gene to the notebook's 60-64 x 64 blocks; without it, as the run breeds "
                        "(its gene unit, parents from the best half)")
    p.add_argument("--sweep", metavar="E1,E2,...",
                   help="epsilons in [0, 1] to measure the three experiments at, plus the published attack at 0.05 "
                        "(without it: one epsilon, --epsilon)")
    p.add_argument("--out", metavar="DIR", help="the folder to write attack_<method>_eps<epsilon>.json and .png into "
                   "(default: RUN_DIR); with several RUN_DIRs, the folder of the summary across them")
    common.add_data_dir(p)
    p.set_defaults(func=cmd_attack)
