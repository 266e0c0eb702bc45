"""Genome checkpoints: a restricted unpickler and the two genome file formats.

genreg's own format (``format == "genreg.genome"``, version 1) is a pickle of a plain dict::

    {"format": "genreg.genome", "version": 1,
     "layout": Layout.to_dict(),              # sizes, hidden_activation, output_activation
     "weights": ndarray (n_params,) float32,  # one flat row: W0 (n_0, n_1) input-major, b0, W1, b1, ...
     "trust": float,
     "metadata": dict}                        # free-form plain data

GENREG's published format is a pickled dict ``{"controller": {input_size, hidden_size,
output_size, w1 (hidden, input), b1 (hidden,), w2 (output, hidden), b2 (output,)},
"genome": {"id", "trust", "proteins"}, "extraction_info"?, "visual_state"?}`` with nested
lists of floats; its network is ``tanh(w1 @ x + b1)`` then ``w2 @ h + b2``.  It converts to
``Layout((input, hidden, output), "tanh", "identity")`` with ``W0 = w1.T``, ``W1 = w2.T``.

Every file is read by :func:`restricted_load`, which rebuilds only plain data (builtin
containers and scalars, ``OrderedDict``, NumPy numeric arrays/scalars) and executes nothing else.
"""

from __future__ import annotations

import _compat_pickle
import io
import numbers
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.errors import CheckpointError, ConfigError
from genreg.atomic import write_atomic
from genreg.genome.bounds import MAX_FILE_BYTES, check_metadata, check_numbers
from genreg.network.layout import Layout

try:  # NumPy >= 2
    from numpy._core import multiarray as _np_multiarray, numeric as _np_numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _np_multiarray, numeric as _np_numeric

FORMAT = "genreg.genome"
VERSION = 1
PICKLE_PROTOCOL = 4
#: The first bytes of every HDF5 file (a state checkpoint, an hpo model: not genomes).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
UNDERSTOOD = ("'genreg.genome' (a dict with format='genreg.genome') and GENREG published "
              "(a dict with 'controller' and 'genome')")


# --------------------------------------------------------------------------- restricted unpickler
class _Refused(Exception):
    """Raised inside the unpickler; turned into a CheckpointError naming the file."""


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` (only a marker for ``_reconstruct``; calling it is refused)."""

    def __call__(self, *args, **kwargs):
        raise _Refused("a direct call of numpy.ndarray")

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()
_PLAIN_KINDS = "biufcSU"  # bool, ints, floats, complex, bytes, str: no objects, no records


def _plain_dtype(obj, align=False, copy=False):
    """``numpy.dtype`` for plain numeric/string dtypes only (always a private copy)."""
    if isinstance(obj, np.dtype):
        dt = obj
    elif isinstance(obj, (str, bytes)):
        dt = np.dtype(obj, align=bool(align), copy=True)
    else:
        raise _Refused(f"numpy.dtype({obj!r}) (structured dtypes are not allowed)")
    if dt.hasobject or dt.kind not in _PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise _Refused(f"an array of dtype {dt} (object/structured arrays are not allowed)")
    return dt


def _bytes_arg(data, what):
    if not isinstance(data, (bytes, bytearray, pickle.PickleBuffer)):
        raise _Refused(f"{what} with a {type(data).__name__} payload")
    return data


def _reconstruct(subtype, shape, typecode):
    """An empty array that the following BUILD fills (its shape comes from the vetted state)."""
    if subtype is not _NDARRAY:
        raise _Refused(f"numpy _reconstruct of {subtype!r}")
    return _np_multiarray._reconstruct(np.ndarray, (0,), _plain_dtype(typecode))


def _frombuffer(buf, dtype, shape, order, *rest):
    return _np_numeric._frombuffer(_bytes_arg(buf, "numpy _frombuffer"), _plain_dtype(dtype), shape, order, *rest)


def _scalar(dtype, data):
    return _np_multiarray.scalar(_plain_dtype(dtype), _bytes_arg(data, "numpy scalar"))


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "latin_1"):
        raise _Refused(f"_codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


def _bytes(*args):
    return bytes(_bytes_arg(args[0], "bytes")) if args else b""


def _bytearray(*args):
    return bytearray(_bytes_arg(args[0], "bytearray")) if args else bytearray()


_ALLOWED = {
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "complex"): complex,
    ("builtins", "bytes"): _bytes, ("builtins", "bytearray"): _bytearray,
    ("_codecs", "encode"): _codecs_encode, ("collections", "OrderedDict"): OrderedDict,
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _plain_dtype,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED.update({(f"{_mod}.multiarray", "_reconstruct"): _reconstruct,
                     (f"{_mod}.multiarray", "scalar"): _scalar, (f"{_mod}.numeric", "_frombuffer"): _frombuffer})


def _check_build(inst, state):
    """Vet a BUILD (``inst.__setstate__(state)``) before it runs: only NumPy arrays/dtypes."""
    if isinstance(inst, np.dtype):  # only the byte order may differ from the dtype's own state
        own = inst.__reduce__()[2]
        same = isinstance(state, tuple) and len(state) == len(own) and all(
            i == 1 or (type(a) is type(b) and a == b) for i, (a, b) in enumerate(zip(state, own)))
        if not (same and state[1] in ("<", ">", "|", "=")):
            raise _Refused(f"a doctored numpy.dtype state {state!r}")
    elif isinstance(inst, np.ndarray):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise _Refused("a malformed numpy array state")
        dtype, data = state[-3], state[-1]
        if not isinstance(dtype, np.dtype):
            raise _Refused(f"a numpy array state with dtype {dtype!r}")
        _plain_dtype(dtype), _bytes_arg(data, "a numpy array")
    else:
        raise _Refused(f"setting the state of a {type(inst).__name__}")


class _RestrictedUnpickler(pickle._Unpickler):  # pure-Python unpickler: lets us vet BUILD
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        if self.proto < 3:  # Python 2 names, as pickle itself maps them (__builtin__, copy_reg, ...)
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def _load_build(self):
        _check_build(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build


def _load_stream(f, src: str):
    try:
        return _RestrictedUnpickler(f).load()
    except _Refused as exc:
        raise CheckpointError(f"refusing to load {exc} from {src}: only plain data is allowed") from None
    except Exception as exc:  # garbage can raise nearly anything inside pickle
        raise CheckpointError(
            f"cannot read {src}: file is truncated or not a pickle ({type(exc).__name__}: {exc})") from None


def restricted_load(fileobj_or_path):
    """Unpickle plain data from a path or binary file object; refuse (CheckpointError) anything else."""
    if hasattr(fileobj_or_path, "read"):
        return _load_stream(fileobj_or_path, str(getattr(fileobj_or_path, "name", "<stream>")))
    path = Path(fileobj_or_path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CheckpointError(f"refusing {path}: {size:,} bytes is larger than any genome checkpoint "
                                  f"({MAX_FILE_BYTES:,} bytes at most)")
        with open(path, "rb") as f:
            head = f.read(8)
            if not head:
                raise CheckpointError(f"cannot read {path}: file is empty (truncated or not a pickle)")
            if head == HDF5_SIGNATURE:
                raise CheckpointError(f"{path} is an HDF5 file, not a genome pickle: a run's state checkpoint "
                                      "(genreg resume reads it) or an hpo model (genreg predict reads it)")
            f.seek(0)
            return _load_stream(f, str(path))
    except OSError as exc:
        raise CheckpointError(f"cannot open checkpoint {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- validation helpers
@dataclass(frozen=True, eq=False)
class GenomeCheckpoint:
    """A loaded genome: ``weights: (layout.n_params,) float32`` C-contiguous row in Layout order."""

    layout: Layout
    weights: np.ndarray
    trust: float
    metadata: dict
    source_format: str  # "genreg" or "genreg-published"


def _numeric(value, where: str, shape: tuple, shape_desc: str = "") -> np.ndarray:
    """``value`` as a finite float32 array of exactly ``shape``; CheckpointError naming ``where``."""
    expected = f"{shape_desc} = {shape}" if shape_desc else f"{shape}"
    check_numbers(value, where, int(np.prod(shape, dtype=np.int64)))
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{where} must have shape {expected}, got ragged nested lists ({exc})") from None
    if arr.dtype.kind == "O":
        raise CheckpointError(f"{where} must be numbers of shape {expected}, got ragged or non-numeric entries")
    if arr.dtype.kind not in "iuf":
        raise CheckpointError(f"{where} must hold numbers, got non-numeric {arr.dtype} entries")
    if arr.shape != shape:
        raise CheckpointError(f"{where} must have shape {expected}, got {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = np.array(arr, dtype=np.float32, order="C")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise CheckpointError(f"{where} contains {bad} NaN/inf value(s) (or values beyond float32 range)")
    return arr


def _real(value, where: str) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and bool(np.isfinite(float(value)))
    except OverflowError:  # an integer beyond float range
        ok = False
    if not ok:
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else f"an integer of {value.bit_length()} bits"
        raise CheckpointError(f"{where} must be a finite number, got {shown}")
    return float(value)


def _get(d, key: str, path: str):
    if not isinstance(d, dict):
        raise CheckpointError(f"'{path}' must be a dict, got {type(d).__name__}")
    if key not in d:
        raise CheckpointError(f"missing key '{path}.{key}'" if path else f"missing key '{key}'")
    return d[key]


def _layout(d) -> Layout:
    if not isinstance(d, dict):
        raise CheckpointError(f"'layout' must be a dict, got {type(d).__name__}")
    try:
        return Layout.from_dict(d)
    except ConfigError as exc:
        raise CheckpointError(f"invalid layout: {exc}") from None


# --------------------------------------------------------------------------- formats
def _from_genreg(obj: dict, src: str) -> GenomeCheckpoint:
    version = _get(obj, "version", "")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{src}: invalid format version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{src} is genreg.genome version {version}, written by a newer genreg; "
                              f"this genreg reads version {VERSION} - upgrade genreg to load it")
    try:
        layout = _layout(_get(obj, "layout", ""))
        weights = _checked_row(layout, _get(obj, "weights", ""))
        trust = _real(_get(obj, "trust", ""), "trust")
        metadata = _get(obj, "metadata", "")
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {exc}") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{src}: 'metadata' must be a dict, got {type(metadata).__name__}")
    check_metadata(metadata, f"{src}: 'metadata'")
    return GenomeCheckpoint(layout, weights, trust, metadata, "genreg")


def _positive_int(ctrl, key):
    v = _get(ctrl, key, "controller")
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise CheckpointError(f"'controller.{key}' must be a positive integer, got {v!r}")
    return int(v)


def _from_published(obj: dict, src: str) -> GenomeCheckpoint:
    try:
        ctrl, genome = _get(obj, "controller", ""), _get(obj, "genome", "")
        n_in, n_h, n_out = (_positive_int(ctrl, k) for k in ("input_size", "hidden_size", "output_size"))
        w1 = _numeric(_get(ctrl, "w1", "controller"), "'controller.w1'", (n_h, n_in), "(hidden_size, input_size)")
        b1 = _numeric(_get(ctrl, "b1", "controller"), "'controller.b1'", (n_h,), "(hidden_size,)")
        w2 = _numeric(_get(ctrl, "w2", "controller"), "'controller.w2'", (n_out, n_h), "(output_size, hidden_size)")
        b2 = _numeric(_get(ctrl, "b2", "controller"), "'controller.b2'", (n_out,), "(output_size,)")
        genome_id = _get(genome, "id", "genome")
        trust = _real(_get(genome, "trust", "genome"), "'genome.trust'")
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {exc}") from None
    layout = Layout((n_in, n_h, n_out), "tanh", "identity")
    weights = layout.flatten([(w1.T, b1), (w2.T, b2)])
    proteins = genome.get("proteins", [])
    for key, value in (("genome.id", genome_id), ("genome.proteins", proteins),
                       ("extraction_info", obj.get("extraction_info")), ("visual_state", obj.get("visual_state"))):
        check_metadata(value, f"{src}: '{key}'")
    metadata = {"genome_id": genome_id, "extraction_info": obj.get("extraction_info"),
                "visual_state": obj.get("visual_state"), "proteins": proteins,
                "n_proteins": len(proteins) if hasattr(proteins, "__len__") else None}
    return GenomeCheckpoint(layout, weights, trust, metadata, "genreg-published")


def load_genome(path) -> GenomeCheckpoint:
    """Load a genome in genreg's own format or GENREG's published format (detected by keys)."""
    obj, src = restricted_load(path), str(path)
    if isinstance(obj, dict) and ("controller" in obj or "genome" in obj) and "format" not in obj:
        return _from_published(obj, src)
    if isinstance(obj, dict) and "format" in obj:
        if not isinstance(obj["format"], str) or obj["format"] != FORMAT:
            raise CheckpointError(f"{src}: unknown checkpoint format {str(obj['format'])[:60]!r}; "
                                  f"understood formats: {UNDERSTOOD}")
        return _from_genreg(obj, src)
    what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
    raise CheckpointError(f"{src} is not a genome checkpoint (top level is {what}); understood formats: {UNDERSTOOD}")


# --------------------------------------------------------------------------- writing
def _checked_row(layout, weights) -> np.ndarray:
    if not isinstance(layout, Layout):
        raise CheckpointError(f"layout must be a genreg Layout, got {type(layout).__name__}")
    return _numeric(weights, "weights", (layout.n_params,), f"(n_params,) of {layout.describe()}")


def _dumps_plain(obj: dict, path) -> bytes:
    """Pickle ``obj`` and prove it reloads through the restricted unpickler (so the file will load)."""
    try:
        payload = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        raise CheckpointError(f"cannot save {path}: {type(exc).__name__}: {exc}") from None
    try:
        _load_stream(io.BytesIO(payload), str(path))
    except CheckpointError as exc:
        raise CheckpointError(f"cannot save {path}: metadata must be plain data (dict, list, str, numbers, "
                              f"numeric numpy arrays): {exc}") from None
    return payload


def save_genome(path, layout: Layout, weights, *, trust: float = 0.0, metadata: dict | None = None) -> Path:
    """Write one genome (``weights: (layout.n_params,)``) in genreg's own format, atomically."""
    row = _checked_row(layout, weights)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise CheckpointError(f"metadata must be a dict, got {type(metadata).__name__}")
    obj = {"format": FORMAT, "version": VERSION, "layout": layout.to_dict(), "weights": row,
           "trust": _real(trust, "trust"), "metadata": metadata}
    return write_atomic(path, _dumps_plain(obj, path))


def save_genreg_published(path, layout: Layout, weights, *, genome_id=0, trust: float = 0.0) -> Path:
    """Write a 2-layer tanh genome in GENREG's published format (nested lists, ``w1 = W0.T``, ``w2 = W1.T``)."""
    row = _checked_row(layout, weights)
    if layout.n_layers != 2 or layout.is_conv or layout.hidden_activation != "tanh" \
            or layout.output_activation != "identity":
        raise CheckpointError("GENREG's published format holds input-hidden-output networks with a tanh hidden "
                              f"layer and identity outputs; got {layout.describe()}, output {layout.output_activation}")
    (W0, b0), (W1, b1) = layout.unflatten(row)
    n_in, n_h, n_out = layout.sizes
    obj = {"controller": {"input_size": n_in, "hidden_size": n_h, "output_size": n_out,
                          "w1": W0.T.tolist(), "b1": b0.tolist(), "w2": W1.T.tolist(), "b2": b1.tolist()},
           "genome": {"id": genome_id, "trust": _real(trust, "trust"), "proteins": []}}
    return write_atomic(path, _dumps_plain(obj, path))
