"""The run directory on disk: HDF5 state checkpoints (the CSV histories: ``genreg.runs.history``).

    RUN_DIR/config.toml                    the resolved config of the latest (re)start
    RUN_DIR/metrics.csv                    one row a generation
    RUN_DIR/tracked_weights.csv            100 fixed weights of the best genome, one row a generation
    RUN_DIR/checkpoints/state_genNNNNN.h5  state after NNNNN generations (last two kept)
    RUN_DIR/best_genome_mnist_genNNNNN.pkl best genome (genreg checkpoint format, `genreg eval` reads it)

A state checkpoint holds named arrays (W, trust, ids, parent_ids, age) and, as
attributes, the format version, generation, layout, config, strategy scalars
and the RNG description (streams are keyed by seed and generation, so that is
the whole RNG state).  W may be stored as a description instead: a population held
as a brood as that brood (group ``brood``, ``genreg.runs.brood_store``), a founder
population (generation 0) as "the founders of seed S" (group ``founders``,
``genreg.runs.founders_store``); reading builds the same bits.  Every dataset carries
its CRC-32 (``genreg.runs.h5fields``).  A checkpoint is written to a temporary file,
fsynced and renamed, so a run killed at any moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import contextlib
import io
import dataclasses
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from genreg.atomic import named, write_atomic
from genreg.config import rename_legacy_keys
from genreg.errors import CheckpointError, GenregError
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.runs.brood_store import read_brood, write_brood
from genreg.runs.founders_store import FOUNDER_CRC_BYTES, build_founders, founders_of, read_founders, write_founders
from genreg.runs.h5fields import (  # noqa: F401 (array_crc32: for importers)
    ATTRS_CRC, array_crc32, attrs_crc32, check_attrs, read_dataset, whole_attr, write_dataset)
from genreg.strategies.base import EvolutionState

FORMAT = "genreg.state"
#: 2: GENREG breeds by the ``crossover`` key and the GA has ``ga_mutation_scale_end``
#: (version 1 files are read as what their runs did: see ``upgrade_config``).
#: 3: the episode and validation keys are named for any task (``config.RENAMED_KEYS``); every
#: dataset carries its CRC-32 (``write_dataset`` / ``read_dataset``).
#: 4: a brood population is stored as its description (group ``brood``) instead of W.
#: 5: a strategy's arrays (an evolution strategy's sigma and optimiser moments) in group ``strategy_arrays``.
#: 6: a founder population (generation 0) is stored as its seed and scale (group ``founders``) instead of W.
FORMAT_VERSION = 6
ARRAYS = ("W", "trust", "ids", "parent_ids", "age")
KEEP = 2


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def _checkpoints(folder: Path) -> list[Path]:
    """State checkpoints in ``folder``, oldest first (by generation, not by name)."""
    found = []
    for path in folder.glob("state_gen*.h5"):
        digits = path.name[len("state_gen") : -len(".h5")]
        if digits.isdigit():
            found.append((int(digits), path))
    return [path for _, path in sorted(found)]


@contextlib.contextmanager
def atomic_h5(path):
    """Write an HDF5 file atomically: yield an open ``h5py.File`` on a buffer in memory, then write its image
    with ``genreg.atomic.write_atomic`` (a temporary file, fsync, rename; its folder made if need be) and fsync
    the directory.  An OSError names ``path``."""
    path = Path(path)
    # HDF5 builds the file in memory; Python writes it out.  HDF5 itself never meets a full
    # disk: its failed writes leave library state that crashed the process at exit (SIGSEGV).
    buffer = io.BytesIO()
    try:
        with h5py.File(buffer, "w") as f:
            yield f
    except OSError as exc:  # h5py's errors name no file
        raise named(exc, path) from None
    write_atomic(path, buffer.getbuffer())
    _fsync_dir(path.parent)


def checkpoint_path(run_dir, generation: int) -> Path:
    """Where ``run_dir``'s state checkpoint after ``generation`` generations is (or would be) written."""
    return checkpoint_dir(run_dir) / f"state_gen{int(generation):05d}.h5"


def checkpoint_generations(run_dir) -> list[int]:
    """The generations of ``run_dir``'s (complete, renamed) state checkpoints, oldest first."""
    return [int(path.name[len("state_gen") : -len(".h5")]) for path in _checkpoints(checkpoint_dir(run_dir))]


def has_checkpoint(run_dir) -> bool:
    """Whether ``run_dir`` holds at least one (complete, renamed) state checkpoint file."""
    return bool(_checkpoints(checkpoint_dir(run_dir)))


def prune_checkpoints(run_dir, keep: int = KEEP) -> None:
    """Delete all but the newest ``keep`` state checkpoints of ``run_dir``."""
    for old in _checkpoints(checkpoint_dir(run_dir))[:-keep]:
        old.unlink()


def check_format(f, path, fmt: str, max_version: int, what: str) -> int:
    """The format version of the open HDF5 file ``f``; CheckpointError naming ``path`` unless its
    ``format`` attribute is ``fmt`` and its ``format_version`` at most ``max_version``."""
    if f.attrs.get("format") != fmt:
        raise CheckpointError(f"{path} is not a genreg {what}")
    version = f.attrs["format_version"]
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) or version < 1:
        raise CheckpointError(f"{path} has an invalid format version {version!r}"[:160])
    version = int(version)
    if version > max_version:
        raise NewerFormatError(f"{path} has format version {version}, written by a newer genreg; this genreg reads "
                               f"up to {max_version}: upgrade genreg to continue this run (nothing was changed)")
    return version


class NewerFormatError(CheckpointError):
    """A file written by a newer genreg: never skipped, never overwritten."""


def write_checkpoint(run_dir, state: EvolutionState, config: dict) -> Path:
    """Atomically write the state after ``state.generation`` generations (a brood as its description);
    keep the last two."""
    path = checkpoint_path(run_dir, state.generation)
    pop = state.population
    founders = founders_of(state)
    with atomic_h5(path) as f:
        for name in ARRAYS:
            if name == "W" and pop.W is None:
                write_brood(f.create_group("brood"), pop.brood)
            elif name == "W" and founders is not None:
                write_founders(f.create_group("founders"), founders, pop, FOUNDER_CRC_BYTES)
            else:
                write_dataset(f, name, getattr(pop, name))
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generation"] = state.generation
        f.attrs["next_id"] = pop.next_id
        f.attrs["layout"] = json.dumps(pop.layout.to_dict())
        f.attrs["config"] = json.dumps(config)
        f.attrs["strategy_state"] = json.dumps(state.scalars())
        if state.arrays():
            group = f.create_group("strategy_arrays")
            for name, data in state.arrays().items():
                write_dataset(group, name, np.asarray(data))
        f.attrs["rng"] = json.dumps(
            {"kind": "splitmix64 streams keyed by (seed, generation, slot, purpose)",
             "seed": config["seed"], "generation": state.generation}
        )
        f.attrs[ATTRS_CRC] = attrs_crc32(f)  # last: every other attribute is written
    prune_checkpoints(run_dir)
    return path


class CheckpointWriter:
    """Writes a run's state checkpoints on one background thread while evolution goes on.

    ``submit`` takes a private copy of the state (a brood's survivor rows copied, its
    description shared: it is never changed), so the run may reuse its buffers at once;
    ``then`` (e.g. writing the best genome's pickle) runs on the same thread after the
    checkpoint.  Writes happen in order, one at a time: ``submit`` first waits for the
    previous write, and re-raises its error, as ``close`` does.  Each file is still
    written atomically, so a run killed during a write resumes from the checkpoint before it.
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genreg-checkpoint")
        self._pending: Future | None = None

    def submit(self, state: EvolutionState, config: dict, then: Callable[[], object] | None = None) -> None:
        self.wait()
        pop = state.population
        W = pop.W.copy() if pop.W is not None else None
        brood = None if pop.brood is None else dataclasses.replace(pop.brood, source=pop.brood.source.copy())
        rows = Population(layout=pop.layout, W=W, brood=brood, trust=pop.trust.copy(), ids=pop.ids.copy(),
                          parent_ids=pop.parent_ids.copy(), age=pop.age.copy(), next_id=pop.next_id)
        snapshot = dataclasses.replace(state, population=rows)  # (a strategy's arrays are never changed in place)

        def write():
            write_checkpoint(self.run_dir, snapshot, config)
            if then is not None:
                then()

        self._pending = self._pool.submit(write)

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, check: bool = True) -> None:
        """Finish the write in flight and stop the thread; ``check=False`` drops its error
        (when the run is already failing for another reason)."""
        try:
            if check:
                self.wait()
            elif self._pending is not None:
                self._pending.exception()  # waits, swallows
        finally:
            self._pool.shutdown(wait=True)


def upgrade_config(config: dict, version: int) -> dict:
    """The config saved in a version-``version`` checkpoint, with the values that make the
    current code continue the run as the code that wrote it would have.

    Version 1: GENREG children had one parent, whatever ``crossover`` said (it was the GA's
    key), and the GA's mutation scale had no schedule.  Versions 1 and 2: MNIST-only key
    names (``images_per_digit``, ``validation_images``).
    """
    config = rename_legacy_keys(config)
    if version < 2:
        if config.get("strategy") == "genreg":
            config["crossover"] = "none"
        config.setdefault("ga_mutation_scale_end", 0.0)
    return config


def read_checkpoint(path) -> tuple[EvolutionState, dict]:
    """Load a state checkpoint; returns (state, config dict, upgraded to this version:
    ``upgrade_config``).  Every field is checked (types, ranges, shapes, checksums);
    errors name the file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            version = check_format(f, path, FORMAT, FORMAT_VERSION, "state checkpoint")
            check_attrs(f)
            brood = read_brood(f["brood"]) if version >= 4 and "brood" in f else None
            founders = read_founders(f["founders"]) if version >= 6 and "founders" in f else None
            if founders is not None and (brood is not None or "W" in f):
                raise ValueError("it holds a founders description beside the population's rows")
            described = brood is not None or founders is not None
            arrays = {name: read_dataset(f, name) for name in ARRAYS if not (name == "W" and described)}
            generation = whole_attr(f.attrs["generation"], "generation")
            next_id = whole_attr(f.attrs["next_id"], "next_id")
            layout = Layout.from_dict(_json_attr(f, "layout", dict))
            config = upgrade_config(_json_attr(f, "config", dict), version)
            scalars = _json_attr(f, "strategy_state", dict)
            extra = {name: _float_array(read_dataset(f["strategy_arrays"], name), f"strategy_arrays/{name}",
                                        layout.n_params) for name in f.get("strategy_arrays", {})}
        for name, kinds in (("W", "f"), ("trust", "f"), ("ids", "iu"), ("parent_ids", "iu"), ("age", "iu")):
            if name in arrays and (arrays[name].dtype.kind not in kinds or arrays[name].ndim != (2 if name == "W" else 1)):
                raise ValueError(f"dataset {name} is {arrays[name].dtype} {arrays[name].shape}")
        if brood is not None:
            if brood.source.shape[1] != layout.n_params:
                raise ValueError(f"the brood's rows have {brood.source.shape[1]} parameters; "
                                 f"{layout.describe()} needs {layout.n_params}")
            arrays["W"] = brood.build()  # the same kernel that scored these children: the same bits
        if founders is not None:
            arrays["W"] = build_founders(founders, layout, arrays["ids"].shape[0])
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scalars.values()):
            raise ValueError("strategy_state must map names to numbers")
        pop = Population(layout=layout, W=np.ascontiguousarray(arrays["W"], dtype=np.float32),
                         trust=arrays["trust"].astype(np.float64), ids=arrays["ids"].astype(np.int64),
                         parent_ids=arrays["parent_ids"].astype(np.int64), age=arrays["age"].astype(np.int32),
                         next_id=next_id, founders=None if founders is None else founders[0])
        if founders is None:  # (founders are finite by construction, and checked against their CRCs)
            pop.check_finite()
        from genreg.strategies import make_strategy

        strategy = make_strategy(str(config.get("strategy")))
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, GenregError) as exc:
        # (h5py raises RuntimeError for some damaged B-trees)
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    return strategy.load_state(pop, generation, scalars, extra), config


def _float_array(data: np.ndarray, name: str, n_params: int) -> np.ndarray:
    """A strategy array as float64: 1-D, finite, at most ``n_params`` long; ValueError naming it otherwise."""
    if data.dtype.kind != "f" or data.ndim != 1 or data.shape[0] > n_params or not np.isfinite(data).all():
        raise ValueError(f"dataset {name} is {data.dtype} {data.shape}, not a finite vector of at most {n_params}")
    return data.astype(np.float64)


def _json_attr(f, name: str, kind: type):
    """A JSON attribute that must decode to ``kind``."""
    raw = f.attrs[name]
    if isinstance(raw, (bytes, np.bytes_)):
        raw = bytes(raw).decode()
    if not isinstance(raw, str):
        raise ValueError(f"attribute {name} must be JSON text, got {type(raw).__name__}")
    value = json.loads(raw)
    if not isinstance(value, kind):
        raise ValueError(f"attribute {name} must be a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def latest_checkpoint(run_dir, reader=None) -> tuple[Path, EvolutionState, dict]:
    """The newest checkpoint that loads; an unreadable newer one is skipped with a warning, but one
    written by a newer genreg stops the resume (it would be overwritten otherwise).

    ``reader(path) -> (state, config)`` defaults to ``read_checkpoint`` (other
    run types, e.g. hybrid runs, pass their own).
    """
    reader = reader or read_checkpoint
    candidates = _checkpoints(checkpoint_dir(run_dir))[::-1]
    if not candidates:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir(run_dir)}: not a run directory, or no checkpoint written yet")
    errors = []
    for path in candidates:
        try:
            state, config = reader(path)
            for msg in errors:
                print(f"genreg: warning: skipped {msg}")
            return path, state, config
        except NewerFormatError:
            raise
        except CheckpointError as exc:
            errors.append(str(exc))
    raise CheckpointError("no loadable checkpoint: " + "; ".join(errors))
