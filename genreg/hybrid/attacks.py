"""Adversarial examples (FGSM, PGD) from the backprop module's input gradient, and transfer analysis.

FGSM (Goodfellow et al. 2015): ``x' = clip(x + epsilon * sign(dL/dx), 0, 1)``
with L the network's NLL loss on the true labels.  PGD (Madry et al. 2018,
no random start): ``steps`` FGSM steps of size ``alpha`` (default
``2.5 * epsilon / steps``), each followed by projection onto the L-infinity
ball of radius epsilon around x and onto the pixel range [0, 1].

Transfer (the reference study's three experiments): an attack crafted on a
source network is evaluated on target networks; ``transfer_matrix[i, j]`` is
the accuracy of target j on images crafted on source i (diagonal = white-box).
Children are untrained and some do not work (clean accuracy under ``WORKING``
times the members' mean): (c') keeps working children only, (c'') working
sources and every other child as target (the notebook's child experiment: one
child's attack against ten other children).

The study's published attack is the same FGSM with other parameters
(``published_fgsm``): an effective epsilon of epsilon / 0.3081, a clip that
never binds at 0.05, and images the source misclassifies left unattacked.

The attack's children are bred like the run's own (its gene unit, parents from
the best half) or, with ``children_as_published``, as the notebook's child
experiment breeds them (``breed_children``): genes of ``PUBLISHED_GENE_ROWS``
input rows of each weight matrix, parents drawn from all members.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from genreg.network.population import check_population_size
from genreg.streams import ATTACK_OFFSET, Purpose, generator, stream_keys

from genreg.network.backprop import accuracy, input_gradient, predict
from genreg.network.blas import blas_threads
from genreg.tasks import Task
from genreg.errors import ConfigError
from genreg.network.layout import Layout

CHUNK = 2000
#: Images per input-gradient batch of a ConvNet (its im2col scratch grows with the batch).
CONV_CHUNK = 200
#: A child "works" when its clean accuracy is at least this share of the members' mean clean accuracy.
WORKING = 0.9
#: The pixel range of the correct attack.
PIXELS = (0.0, 1.0)
#: MNIST's pixel mean and standard deviation: the constants of the published notebook's ``denorm``.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: The study's epsilon.
PUBLISHED_EPSILON = 0.05
#: Input rows per gene of the notebook's children (``GeneticLinear(gene_size=64)``; see ``breed_children``).
PUBLISHED_GENE_ROWS = 64


def _check_eps(epsilon: float) -> float:
    """An L-infinity budget in pixel units: a number in [0, 1] (pixels lie in [0, 1])."""
    if isinstance(epsilon, bool) or not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon)
                                         and 0 <= epsilon <= 1):
        raise ConfigError(f"epsilon must be a number in [0, 1] (pixel units), got {epsilon!r}")
    return float(epsilon)


def published_fgsm(epsilon: float = PUBLISHED_EPSILON, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> dict:
    """The ``fgsm`` keyword arguments of the attack as published at ``epsilon``.

    The study's notebook (GavinCooke2000/Genetic_ML, ``GeneticMNIST.ipynb``,
    cells 15, 27 and 29) feeds the network ``x = pixel / 255`` in [0, 1]
    (``ToTensor()`` only, no normalisation) and takes ``g = dL/dx`` at x, then:

        d  = denorm(x) = std * x + mean                 in [mean, mean + std] = [0.1307, 0.4388]
        p  = clamp(d + epsilon * sign(g), 0, 1)
        x' = (p - mean) / std                           (transforms.Normalize)

    ``u -> (u - mean) / std`` is increasing, so the clamp passes through it:

        x' = clamp(x + (epsilon / std) * sign(g), -mean / std, (1 - mean) / std)
           = clamp(x + 0.1623 * sign(g), -0.4242, 2.8215)      at epsilon = 0.05.

    The clamp binds only where ``d + epsilon * sign(g)`` leaves [0, 1]:
    below when ``epsilon > mean`` (0.1307; a black pixel pushed down), above
    when ``epsilon > 1 - mean - std`` (0.5612; a white pixel pushed up).  At
    0.05 neither can happen: ``x' = x + (epsilon / std) * sign(g)`` exactly, an
    L-infinity perturbation of 0.1623 in the network's input space, and pixels
    leave [0, 1] (black ones to -0.162, white ones to 1.162).  Images the
    source network already misclassifies pass to the target unattacked
    (``x' = x``), and accuracy divides by all images.

    The notebook attacks one image per batch; ``fgsm`` takes the gradient of
    the mean loss over a chunk of B images, which depends on image i only
    through its own term: its gradient for ``x_i`` is the per-image gradient
    divided by B, so the sign is the same (tests check it on trained networks).
    """
    e = _check_eps(epsilon)
    return {"epsilon": e / std, "clip": (-mean / std, (1.0 - mean) / std), "skip_misclassified": True}


def fgsm(layout: Layout, row: np.ndarray, X: np.ndarray, y: np.ndarray, epsilon: float = 0.05,
         clip: tuple[float, float] | None = PIXELS, skip_misclassified: bool = False) -> np.ndarray:
    """FGSM images ``(N, n_in) float32`` for ``X: (N, n_in)`` in [0, 1] and labels ``y: (N,)``.

    clip: the range the images are clipped to (None: no clip); skip_misclassified: images ``row``
    misclassifies are returned unchanged (the published attack, ``published_fgsm``).
    """
    eps = np.float32(_check_eps(epsilon))
    X = np.asarray(X, dtype=np.float32)
    out = np.empty_like(X)
    step = _chunk(layout)
    for s in range(0, X.shape[0], step):
        _, dX = input_gradient(layout, row, X[s : s + step], y[s : s + step])
        np.add(X[s : s + step], eps * np.sign(dX), out=out[s : s + step])
    if clip is not None:
        np.clip(out, np.float32(clip[0]), np.float32(clip[1]), out=out)
    if skip_misclassified:
        wrong = predict(layout, row, X) != np.asarray(y)
        out[wrong] = X[wrong]
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


def _check_method(method: str, published: bool) -> None:
    if method not in ("fgsm", "pgd"):
        raise ConfigError(f"method must be 'fgsm' or 'pgd', got {method!r}")
    if published and method != "fgsm":
        raise ConfigError(f"the published attack is FGSM; --as-published does not apply to --method {method}")


def craft(layout, row, X, y, epsilon=0.05, method="fgsm", steps=10, published=False) -> np.ndarray:
    """Adversarial images by ``method`` ('fgsm' or 'pgd'); published=True: FGSM as published (``published_fgsm``)."""
    _check_method(method, published)
    if published:
        return fgsm(layout, row, X, y, **published_fgsm(epsilon))
    if method == "fgsm":
        return fgsm(layout, row, X, y, epsilon)
    return pgd(layout, row, X, y, epsilon, steps)


def transfer_matrix(layout: Layout, W: np.ndarray, X, y, epsilon=0.05, method="fgsm", steps=10,
                    published=False) -> np.ndarray:
    """``(M, M)`` accuracies: row i = attack crafted on ``W[i]``, column j = target ``W[j]``."""
    M = W.shape[0]
    out = np.empty((M, M))
    for i in range(M):
        adv = craft(layout, W[i], X, y, epsilon, method, steps, published)
        for j in range(M):
            out[i, j] = accuracy(layout, W[j], adv, y)
    return out


def summarize(matrix: np.ndarray) -> dict:
    """Mean/min/max of the diagonal (self) and off-diagonal (transfer) accuracies."""
    M = matrix.shape[0]
    return {"self": _stats(np.diag(matrix)), "transfer": _stats(matrix[~np.eye(M, dtype=bool)])}


def best_source(matrix: np.ndarray, clean) -> dict:
    """The network with the highest clean accuracy (the first of equals) as the only source: its index, its
    accuracy under its own attack, and the others' under it (the notebook's (a) and (b) report that one
    network, not a mean over sources)."""
    b = int(np.argmax(clean))
    return {"index": b, "self": float(matrix[b, b]), "transfer": _stats(np.delete(matrix[b], b))}


def _stats(v: np.ndarray) -> dict:
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())} if v.size else {}


def children_protocol(cfg, as_published: bool = False) -> dict:
    """How ``breed_children`` breeds: the gene unit, rows per gene (block genes) and the parents' pool."""
    if as_published:
        return {"genes": "block", "gene_block_rows": PUBLISHED_GENE_ROWS, "parents": "all"}
    return {"genes": cfg.genes, "gene_block_rows": cfg.gene_block_rows if cfg.genes == "block" else None,
            "parents": "best half"}


def breed_children(state, cfg, n_children: int, as_published: bool = False) -> tuple[np.ndarray, ...]:
    """``(children (C, n_params) float32, parent_a (C,), parent_b (C,))`` of a run's final state (attack stream).

    Default: the run's own breeding (``genreg.hybrid.strategy.breed``: its gene unit, two distinct
    parents from the best half).  as_published: the notebook's child experiment (GavinCooke2000/
    Genetic_ML, ``GeneticMNIST.ipynb``): two distinct parents drawn uniformly from all members,
    and the same gene crossover over genes of ``PUBLISHED_GENE_ROWS`` input rows of each weight
    matrix (each bias one gene).  The notebook's ``GeneticLinear.recombine`` cuts each weight
    matrix into ceil(n_in / 64) x ceil(n_out / 64) blocks (784 inputs: 13 blocks of 60 rows,
    the last 4 rows left at the child's random init); genreg's genes span every output, so its
    blocks have the notebook's row split (64-row blocks: 13 in the first layer, 4, 2 in the
    others, exactly the notebook's count) but not its column split (4 blocks of 64 of the
    first layer's 256 outputs, 2 of the second's 128).
    """
    from genreg.hybrid.strategy import breed, crossover_bounds, pick_parents
    from genreg.network.variation import gene_crossover

    g = state.generation + 1
    if not as_published:
        return breed(state, cfg, children=n_children, generation=g, purpose_offset=ATTACK_OFFSET)
    pop = state.population
    a, b = pick_parents(n_children, pop.size, generator(cfg.seed, g, Purpose.SELECTION + ATTACK_OFFSET))
    keys = stream_keys(cfg.seed, g, np.arange(n_children), Purpose.CROSSOVER + ATTACK_OFFSET)
    blocks = dataclasses.replace(cfg, genes="block", gene_block_rows=PUBLISHED_GENE_ROWS)
    return gene_crossover(pop.W, a, b, keys, crossover_bounds(blocks, pop.layout)), a, b


def load_study(run_dir, n_images=1000, n_children=None, data_dir=None, children_as_published=False) -> dict:
    """A hybrid run's final members, fresh children of them, the first ``n_images`` test images and clean accuracies.

    The task must be one of images (uint8 pixels, read as pixel/255) and classes.  The children
    come from the run's own attack stream: the same children for every attack of the run
    (``breed_children``; children_as_published: bred as the notebook's child experiment).
    """
    inputs = study_inputs(run_dir, n_images, data_dir)
    return _study(run_dir, *inputs, n_images, n_children, children_as_published)


def study_inputs(run_dir, n_images=1000, data_dir=None) -> tuple:
    """``(checkpoint path, state, cfg, task)`` of a hybrid run that can be attacked (its newest state); a
    one-line ConfigError otherwise.  ``genreg attack`` checks every RUN_DIR with it before attacking the first."""
    from genreg.hybrid.config import HybridConfig, from_mapping
    from genreg.hybrid.run import latest_state, load_run_task
    from genreg.runs.rundir import MARKER, run_kind

    run_dir = Path(run_dir)
    if isinstance(n_images, bool) or not isinstance(n_images, int) or not 1 <= n_images <= 10000:
        raise ConfigError(f"--images must be in [1, 10000], got {n_images!r}")
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
    return path, state, cfg, task


def _study(run_dir, path, state, cfg, task, n_images, n_children, children_as_published) -> dict:
    """``load_study``'s work once its inputs are checked."""
    layout = state.population.layout
    C = state.population.size if n_children is None else n_children
    if isinstance(C, bool) or not isinstance(C, int) or C < 1:
        raise ConfigError(f"--children must be a positive number, got {C!r}")
    check_population_size(layout, C, copies=2)  # the children and their attacked copies, before any work
    children, a, b = breed_children(state, cfg, C, children_as_published)
    X, y = Task.as_float(task.X_test[:n_images]), task.y_test[:n_images]
    W = state.population.W
    with blas_threads(1):
        clean = [[accuracy(layout, w, X, y) for w in group] for group in (W, children)]
    return {"run_dir": str(run_dir), "checkpoint": path.name, "generation": state.generation, "layout": layout,
            "members": W, "children": children, "parents": [a.tolist(), b.tolist()], "X": X, "y": y,
            "children_protocol": children_protocol(cfg, children_as_published),
            "clean_members": clean[0], "clean_children": clean[1]}


def attack_study(study: dict, epsilon=0.05, method="fgsm", steps=10, published=False) -> dict:
    """The three experiments on a ``load_study`` result: the report ``run_attacks`` writes."""
    _check_eps(epsilon)
    _check_method(method, published)
    layout, X, y = study["layout"], study["X"], study["y"]
    with blas_threads(1):
        members = transfer_matrix(layout, study["members"], X, y, epsilon, method, steps, published)
        kids = transfer_matrix(layout, study["children"], X, y, epsilon, method, steps, published)
    working = np.asarray(study["clean_children"]) >= WORKING * np.mean(study["clean_members"])
    report = {k: study[k] for k in ("run_dir", "checkpoint", "generation")}
    report.update({
        "shape": layout.shape_name(), "method": method, "epsilon": epsilon,
        "steps": steps if method == "pgd" else 1, "n_images": int(len(y)), "published": bool(published),
        "children_as_published": study["children_protocol"]["parents"] == "all",
        "members": {"clean": study["clean_members"], "matrix": members.tolist(), **summarize(members),
                    "best": best_source(members, study["clean_members"])},
        "children": {"clean": study["clean_children"], "matrix": kids.tolist(), "parents": study["parents"],
                     "protocol": study["children_protocol"],
                     **summarize(kids), "working": working.tolist(),
                     "working_transfer": summarize(kids[np.ix_(working, working)])["transfer"],
                     "working_source_transfer": _stats(kids[working][~np.eye(len(working), dtype=bool)[working]])},
    })
    if published:
        p = published_fgsm(epsilon)
        report.update(effective_epsilon=p["epsilon"], clip=list(p["clip"]), skip_misclassified=True)
    return report


def attack_tag(method: str, epsilon: float, published: bool = False, children_as_published: bool = False) -> str:
    """``fgsm_eps0.05``, ``fgsm_published_eps0.05``, ``fgsm_published_eps0.05_notebook_children``: the stem of a
    report's files after ``attack_``."""
    children = "_notebook_children" if children_as_published else ""
    return f"{method}{'_published' if published else ''}_eps{epsilon:g}{children}"


def run_attacks(run_dir, epsilon=0.05, method="fgsm", steps=10, n_images=1000, n_children=None, data_dir=None,
                out_dir=None, published=False, children_as_published=False) -> tuple[dict, list[Path]]:
    """The three experiments on a hybrid run's final population; writes attack_<tag>.json and its heat-maps.

    The images are the first ``n_images`` of the test split of the run's task (from its config).
    published=True: FGSM as the study published it (``published_fgsm``), files ``attack_fgsm_published_eps*``.
    children_as_published=True: children bred as the notebook's (``breed_children``), files ``*_notebook_children``.
    """
    _check_eps(epsilon)
    _check_method(method, published)
    study = load_study(run_dir, n_images, n_children, data_dir, children_as_published)
    report = attack_study(study, epsilon, method, steps, published)
    out_dir = Path(out_dir) if out_dir else Path(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = attack_tag(method, epsilon, published, children_as_published)
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
    attack = (f"FGSM as published: epsilon={report['epsilon']:g} after denormalising, i.e. "
              f"{report['effective_epsilon']:.4f} unclipped on [0, 1] pixels, misclassified images unattacked"
              if report.get("published") else f"{report['method'].upper()} epsilon={report['epsilon']:g}")
    title = (f"{attack}{' steps=' + str(report['steps']) if report['method'] == 'pgd' else ''} on "
             f"{report['n_images']} test images; {report['shape']}, generation {report['generation']}, "
             f"{len(m['clean'])} members, {len(c['clean'])} children")
    if report.get("children_as_published"):
        title += (f" (bred as the notebook's: genes of {c['protocol']['gene_block_rows']} input rows, "
                  "parents from all members)")
    rows = [
        ("members, clean", clean(m["clean"])),
        ("(a) each member, attack crafted on itself", cell(m["self"])),
        ("(b) other members, attack crafted on one member", cell(m["transfer"])),
        ("(a1) the best member, attack crafted on itself", cell(_stats(np.array([m["best"]["self"]])))),
        ("(b1) other members, attack crafted on the best member", cell(m["best"]["transfer"])),
        ("children (untrained), clean", clean(c["clean"])),
        ("(c) other children, attack crafted on one child", cell(c["transfer"])),
        (f"(c') the same among the {sum(c['working'])} working children", cell(c["working_transfer"])),
        ("(c'') other children, attack crafted on a working child", cell(c["working_source_transfer"])),
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
    fig.suptitle(f"{report['method'].upper()}{' as published' if report.get('published') else ''} "
                 f"epsilon={report['epsilon']:g}, {report['shape']}, "
                 f"{report['n_images']} test images")
    save_figure(fig, path)
    return Path(path)
