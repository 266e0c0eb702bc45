"""Adversarial examples (FGSM, PGD) from the backprop module's input gradient, and transfer analysis.

FGSM (Goodfellow et al. 2015): ``x' = clip(x + epsilon * sign(dL/dx), 0, 1)``
with L the network's NLL loss on the true labels.  PGD (Madry et al. 2018,
no random start): ``steps`` FGSM steps of size ``alpha`` (default
``2.5 * epsilon / steps``), each followed by projection onto the L-infinity
ball of radius epsilon around x and onto the pixel range [0, 1].

Transfer (the reference study's three experiments): an attack crafted on a
source network is evaluated on target networks; ``transfer_matrix[i, j]`` is
the accuracy of target j on images crafted on source i (diagonal = white-box).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genreg.network.population import check_population_size
from genreg.streams import ATTACK_OFFSET

from genreg.network.backprop import accuracy, input_gradient
from genreg.network.blas import blas_threads
from genreg.tasks import Task
from genreg.errors import ConfigError
from genreg.network.layout import Layout

CHUNK = 2000
#: Images per input-gradient batch of a ConvNet (its im2col scratch grows with the batch).
CONV_CHUNK = 200
#: A child "works" when its clean accuracy is at least this share of the members' mean clean accuracy.
WORKING = 0.9


def _check_eps(epsilon: float) -> float:
    if not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    return float(epsilon)


def fgsm(layout: Layout, row: np.ndarray, X: np.ndarray, y: np.ndarray, epsilon: float = 0.05) -> np.ndarray:
    """FGSM images ``(N, n_in) float32`` in [0, 1] for ``X: (N, n_in)`` in [0, 1] and labels ``y: (N,)``."""
    eps = np.float32(_check_eps(epsilon))
    X = np.asarray(X, dtype=np.float32)
    out = np.empty_like(X)
    step = _chunk(layout)
    for s in range(0, X.shape[0], step):
        _, dX = input_gradient(layout, row, X[s : s + step], y[s : s + step])
        np.clip(X[s : s + step] + eps * np.sign(dX), 0.0, 1.0, out=out[s : s + step])
    return out


def _chunk(layout: Layout) -> int:
    """Images per input-gradient batch (only the sign of the gradient of the batch's mean loss is used)."""
    return CONV_CHUNK if layout.is_conv else CHUNK


def pgd(layout: Layout, row: np.ndarray, X: np.ndarray, y: np.ndarray, epsilon: float = 0.05, steps: int = 10,
        alpha: float | None = None) -> np.ndarray:
    """PGD images ``(N, n_in) float32``: ``steps`` signed-gradient steps projected on the epsilon ball and [0, 1]."""
    eps = np.float32(_check_eps(epsilon))
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
    a = np.float32(2.5 * eps / steps if alpha is None else alpha)
    X = np.asarray(X, dtype=np.float32)
    lo, hi = np.clip(X - eps, 0.0, 1.0), np.clip(X + eps, 0.0, 1.0)
    adv = X.copy()
    step = _chunk(layout)
    for _ in range(steps):
        for s in range(0, X.shape[0], step):
            _, dX = input_gradient(layout, row, adv[s : s + step], y[s : s + step])
            adv[s : s + step] += a * np.sign(dX)
        np.clip(adv, lo, hi, out=adv)
    return adv


def craft(layout, row, X, y, epsilon=0.05, method="fgsm", steps=10) -> np.ndarray:
    """Adversarial images by ``method`` ('fgsm' or 'pgd')."""
    if method == "fgsm":
        return fgsm(layout, row, X, y, epsilon)
    if method == "pgd":
        return pgd(layout, row, X, y, epsilon, steps)
    raise ConfigError(f"method must be 'fgsm' or 'pgd', got {method!r}")


def transfer_matrix(layout: Layout, W: np.ndarray, X, y, epsilon=0.05, method="fgsm", steps=10) -> np.ndarray:
    """``(M, M)`` accuracies: row i = attack crafted on ``W[i]``, column j = target ``W[j]``."""
    M = W.shape[0]
    out = np.empty((M, M))
    for i in range(M):
        adv = craft(layout, W[i], X, y, epsilon, method, steps)
        for j in range(M):
            out[i, j] = accuracy(layout, W[j], adv, y)
    return out


def summarize(matrix: np.ndarray) -> dict:
    """Mean/min/max of the diagonal (self) and off-diagonal (transfer) accuracies."""
    M = matrix.shape[0]
    diag = np.diag(matrix)
    off = matrix[~np.eye(M, dtype=bool)]

    def stats(v):
        return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())} if v.size else {}

    return {"self": stats(diag), "transfer": stats(off)}


def run_attacks(run_dir, epsilon=0.05, method="fgsm", steps=10, n_images=1000, n_children=0, data_dir=None,
                out_dir=None) -> tuple[dict, list[Path]]:
    """The three experiments on a hybrid run's final population; writes attack.json and heat-maps.

    The images are the first ``n_images`` of the test split of the run's task (from its config);
    the task must be one of images (uint8 pixels, read as pixel/255) and classes.
    """
    from genreg.hybrid.strategy import breed
    from genreg.hybrid.config import HybridConfig, from_mapping
    from genreg.hybrid.run import latest_state, load_run_task

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    if not isinstance(n_images, int) or not 1 <= n_images <= 10000:
        raise ConfigError(f"--images must be in [1, 10000], got {n_images!r}")
    from genreg.runs.rundir import MARKER, run_kind

    if (run_dir / MARKER).is_file() and run_kind(run_dir) != "hybrid":
        raise ConfigError(f"{run_dir} is an {run_kind(run_dir)} run; genreg attack studies the population of a "
                          "hybrid run (genreg hybrid)")
    path, state, saved = latest_state(run_dir)
    cfg = from_mapping({k: v for k, v in saved.items() if k in HybridConfig.__dataclass_fields__})
    if state.generation == 0:
        raise ConfigError(f"{run_dir}: no generation trained yet, nothing to attack")
    task = load_run_task(cfg, data_dir)
    if not task.is_classification or task.X_test.dtype != np.uint8:
        raise ConfigError(f"{run_dir}: task {cfg.task} is not one of images and classes; attacks perturb pixels "
                          "in [0, 1] against class labels")
    if n_images > len(task.y_test):
        raise ConfigError(f"--images {n_images}: task {cfg.task} has {len(task.y_test)} test images")
    out_dir.mkdir(parents=True, exist_ok=True)
    layout = state.population.layout
    X, y = Task.as_float(task.X_test[:n_images]), task.y_test[:n_images]
    C = n_children or state.population.size
    if not isinstance(C, int) or C < 1:
        raise ConfigError(f"--children must be a positive number, got {C!r}")
    check_population_size(layout, C, copies=2)  # the children and their attacked copies, before any work
    children, a, b = breed(state, cfg, children=C, generation=state.generation + 1, purpose_offset=ATTACK_OFFSET)
    with blas_threads(1):
        members = transfer_matrix(layout, state.population.W, X, y, epsilon, method, steps)
        kids = transfer_matrix(layout, children, X, y, epsilon, method, steps)
        clean_members = [accuracy(layout, w, X, y) for w in state.population.W]
        clean_children = [accuracy(layout, w, X, y) for w in children]
    working = np.asarray(clean_children) >= WORKING * np.mean(clean_members)
    report = {
        "run_dir": str(run_dir), "checkpoint": path.name, "generation": state.generation,
        "shape": layout.shape_name(), "method": method, "epsilon": epsilon,
        "steps": steps if method == "pgd" else 1, "n_images": n_images,
        "members": {"clean": clean_members, "matrix": members.tolist(), **summarize(members)},
        "children": {"clean": clean_children, "matrix": kids.tolist(), "parents": [a.tolist(), b.tolist()],
                     **summarize(kids), "working": working.tolist(),
                     "working_transfer": summarize(kids[np.ix_(working, working)])["transfer"]},
    }
    tag = f"{method}_eps{epsilon:g}"
    written = [out_dir / f"attack_{tag}.json"]
    written[0].write_text(json.dumps(report, indent=1) + "\n")
    written.append(plot_transfer(report, out_dir / f"attack_{tag}.png"))
    return report, written


def format_transfer(report: dict) -> str:
    """The table of the three experiments (accuracy under attack, mean [min, max])."""

    def cell(s):
        return f"{100 * s['mean']:6.2f}%  [{100 * s['min']:6.2f}%, {100 * s['max']:6.2f}%]" if s else "-"

    def clean(v):
        v = np.asarray(v)
        return cell({"mean": v.mean(), "min": v.min(), "max": v.max()})

    m, c = report["members"], report["children"]
    title = (f"{report['method'].upper()} epsilon={report['epsilon']:g}"
             f"{' steps=' + str(report['steps']) if report['method'] == 'pgd' else ''} on {report['n_images']} "
             f"test images; {report['shape']}, generation {report['generation']}, {len(m['clean'])} members, "
             f"{len(c['clean'])} children")
    rows = [
        ("members, clean", clean(m["clean"])),
        ("(a) each member, attack crafted on itself", cell(m["self"])),
        ("(b) other members, attack crafted on one member", cell(m["transfer"])),
        ("children (untrained), clean", clean(c["clean"])),
        ("(c) other children, attack crafted on one child", cell(c["transfer"])),
        (f"(c') the same among the {sum(c['working'])} working children", cell(c["working_transfer"])),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title, f"{'experiment':<{width}}  accuracy: mean [min, max]", "-" * (width + 36)]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def plot_transfer(report: dict, path) -> Path:
    """Heat-maps of source x target accuracy for members and children."""
    from genreg.plots.run import _pyplot, save_figure

    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    for ax, key, name in ((axes[0], "members", "final population"), (axes[1], "children", "children of it")):
        M = 100 * np.asarray(report[key]["matrix"])
        im = ax.imshow(M, vmin=0, vmax=100, cmap="magma")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("target network")
        ax.set_ylabel("source network (attack crafted on)")
        ax.set_title(f"{name}: accuracy (%)")
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(f"{report['method'].upper()} epsilon={report['epsilon']:g}, {report['shape']}, "
                 f"{report['n_images']} test images")
    save_figure(fig, path)
    return Path(path)
