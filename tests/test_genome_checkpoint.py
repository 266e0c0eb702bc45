"""genreg.genome.checkpoint: restricted unpickler, genreg.genome format, GENREG published format."""

import io
import os
import pickle
import subprocess

import numpy as np
import pytest

from genreg.errors import CheckpointError
from genreg.genome.checkpoint import (
    FORMAT,
    GenomeCheckpoint,
    load_genome,
    restricted_load,
    save_genome,
    save_genreg_published,
)
from genreg.network.layout import Layout


def _row(layout, seed=0):
    return np.random.default_rng(seed).standard_normal(layout.n_params).astype(np.float32)


def _dump(path, obj, protocol=4):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _own(lay, weights, **over):
    d = {"format": FORMAT, "version": 1, "layout": lay.to_dict(), "weights": weights,
         "trust": 0.5, "metadata": {}}
    d.update(over)
    return d


# ----------------------------------------------------------------------------- own format
@pytest.mark.parametrize("layout", [
    Layout((784, 16, 10)),
    Layout((5, 7, 6, 3), "relu", "softmax"),
    Layout((3, 2), "sigmoid", "identity"),
])
def test_own_format_round_trip(tmp_path, layout):
    w = _row(layout)
    meta = {"generation": 12, "seed": 7, "genome_id": 42, "parent_id": None, "accuracy": np.float64(0.91),
            "config": {"lr": 0.1, "tags": ["a", "b"], "shape": (1, 2)}, "hist": np.arange(4)}
    out = save_genome(tmp_path / "sub" / "g.pkl", layout, w, trust=3.25, metadata=meta)
    assert out == tmp_path / "sub" / "g.pkl" and out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["g.pkl"]  # no temp file left
    g = load_genome(out)
    assert isinstance(g, GenomeCheckpoint) and g.source_format == "genreg"
    assert g.layout == layout and g.layout.to_dict() == layout.to_dict()
    assert g.weights.dtype == np.float32 and g.weights.shape == (layout.n_params,)
    assert g.weights.flags.c_contiguous
    assert g.weights.tobytes() == w.tobytes()  # bit-identical
    assert g.trust == 3.25
    assert g.metadata["config"] == meta["config"] and g.metadata["accuracy"] == 0.91
    assert g.metadata["parent_id"] is None and np.array_equal(g.metadata["hist"], np.arange(4))
    # the raw file really is the documented plain dict
    raw = pickle.loads(out.read_bytes())
    assert set(raw) == {"format", "version", "layout", "weights", "trust", "metadata"}
    assert raw["format"] == "genreg.genome" and raw["version"] == 1 and raw["layout"] == layout.to_dict()


@pytest.mark.parametrize("protocol", range(6))
def test_own_format_written_by_hand_any_protocol(tmp_path, protocol):
    layout = Layout((4, 3, 2))
    w = _row(layout, 1)
    g = load_genome(_dump(tmp_path / "g.pkl", _own(layout, w, trust=2), protocol))
    assert g.weights.tobytes() == w.tobytes() and g.trust == 2.0 and g.layout == layout


def test_save_overwrites_atomically(tmp_path):
    layout = Layout((4, 3, 2))
    p = tmp_path / "g.pkl"
    save_genome(p, layout, _row(layout, 1))
    save_genome(p, layout, _row(layout, 2), trust=1.0)
    assert load_genome(p).weights.tobytes() == _row(layout, 2).tobytes()
    assert [x.name for x in tmp_path.iterdir()] == ["g.pkl"]


# ----------------------------------------------------------------------------- GENREG published
def _published(n_in=20, n_h=8, n_out=12, seed=3):
    rng = np.random.default_rng(seed)
    ctrl = {
        "input_size": n_in, "hidden_size": n_h, "output_size": n_out,
        "w1": [[float(v) for v in rng.standard_normal(n_in)] for _ in range(n_h)],
        "b1": [float(v) for v in rng.standard_normal(n_h)],
        "w2": [[float(v) for v in rng.standard_normal(n_h)] for _ in range(n_out)],
        "b2": [float(v) for v in rng.standard_normal(n_out)],
    }
    proteins = [{"type": "sensor", "name": "p0", "params": {"gain": 1.5}},
                {"type": "trust_modifier", "name": "p1", "params": {"scale": 0.2, "on": True}}]
    return {"controller": ctrl, "genome": {"id": 1234, "trust": 87.5, "proteins": proteins},
            "extraction_info": {"source": "run_7", "generation": 300, "accuracy": 0.81},
            "visual_state": {"frame": 3, "colors": [1, 2, 3]}}


def test_published_format_converts_to_layout(tmp_path):
    obj = _published()
    g = load_genome(_dump(tmp_path / "best_genome.pkl", obj))
    c = obj["controller"]
    assert g.source_format == "genreg-published"
    assert g.layout == Layout((20, 8, 12), "tanh", "identity")
    (W0, b0), (W1, b1) = g.layout.unflatten(g.weights)
    assert np.array_equal(W0, np.array(c["w1"], dtype=np.float32).T)
    assert np.array_equal(b0, np.array(c["b1"], dtype=np.float32))
    assert np.array_equal(W1, np.array(c["w2"], dtype=np.float32).T)
    assert np.array_equal(b1, np.array(c["b2"], dtype=np.float32))
    assert g.trust == 87.5
    assert g.metadata["genome_id"] == 1234
    assert g.metadata["extraction_info"] == obj["extraction_info"]
    assert g.metadata["visual_state"] == obj["visual_state"]
    assert g.metadata["proteins"] == obj["genome"]["proteins"] and g.metadata["n_proteins"] == 2


def test_published_network_semantics(tmp_path):
    obj = _published(n_in=30, n_h=16, n_out=12, seed=5)
    g = load_genome(_dump(tmp_path / "g.pkl", obj))
    c = obj["controller"]
    x = np.random.default_rng(9).integers(0, 256, size=(500, 30)) / 255.0  # pixels / 255 in [0, 1]
    # GENREG's own computation, straight from the nested lists, one sample at a time
    w1, b1, w2, b2 = (np.array(c[k], dtype=np.float64) for k in ("w1", "b1", "w2", "b2"))
    ref = np.array([np.argmax((w2 @ np.tanh(w1 @ xi + b1) + b2)[:10]) for xi in x])
    # ours, batched through the Layout views
    (W0, B0), (W1, B1) = g.layout.unflatten(g.weights)
    logits = np.tanh(x.astype(np.float32) @ W0 + B0) @ W1 + B1
    ours = np.argmax(logits[:, :10], axis=1)
    assert np.mean(ours == ref) == 1.0
    assert len(set(ref.tolist())) > 1  # the check is not trivially constant


def test_save_genreg_published_round_trip(tmp_path):
    layout = Layout((10, 6, 12))
    w = _row(layout, 4)
    p = save_genreg_published(tmp_path / "pub.pkl", layout, w, genome_id=9, trust=1.5)
    raw = pickle.loads(p.read_bytes())
    assert isinstance(raw["controller"]["w1"], list) and isinstance(raw["controller"]["w1"][0][0], float)
    assert len(raw["controller"]["w1"]) == 6 and len(raw["controller"]["w1"][0]) == 10
    g = load_genome(p)
    assert g.weights.tobytes() == w.tobytes() and g.layout == layout
    assert g.trust == 1.5 and g.metadata["genome_id"] == 9


@pytest.mark.parametrize("layout", [Layout((4, 3, 3, 2)), Layout((4, 3, 2), "relu"), Layout((4, 2))])
def test_save_genreg_published_refuses_other_layouts(tmp_path, layout):
    with pytest.raises(CheckpointError, match="tanh"):
        save_genreg_published(tmp_path / "p.pkl", layout, _row(layout))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- hostile pickles
class _Reduce:
    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


class Gadget:  # a custom class from this test module
    def __init__(self):
        self.x = 1


def _hostile(marker):
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "posix.system": pickle.dumps(_Reduce(os.system, (f"touch {marker}",))),
        "os.system": f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),
        "builtins.eval": pickle.dumps(_Reduce(eval, (code,))),
        "builtins.exec": pickle.dumps(_Reduce(exec, (code,))),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],))),
        "numpy.load": pickle.dumps({"w": _Reduce(np.load, (str(marker),))}),
        "Gadget": pickle.dumps({"g": Gadget()}),
        "copyreg._reconstructor": pickle.dumps({"g": Gadget()}, protocol=1),
        "builtins.getattr": pickle.dumps(_Reduce(getattr, ("abc", "upper"))),
    }


@pytest.mark.parametrize("name", list(_hostile("x")))
def test_hostile_pickle_refused_and_not_executed(tmp_path, name):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(_hostile(marker)[name])
    for load in (restricted_load, load_genome):
        with pytest.raises(CheckpointError) as exc:
            load(p)
        msg = str(exc.value)
        assert "refusing to load" in msg and name in msg and "only plain data" in msg and str(p) in msg
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refusing"):  # file objects too
        restricted_load(io.BytesIO(p.read_bytes()))
    assert not marker.exists()


def test_object_dtype_array_refused(tmp_path):
    p = _dump(tmp_path / "o.pkl", _own(Layout((1, 2)), np.array([1.0, "x", None, 2.0], dtype=object)))
    with pytest.raises(CheckpointError, match="refusing to load an array of dtype object .*not allowed"):
        load_genome(p)
    with pytest.raises(CheckpointError, match="refusing to load an array of dtype object"):
        restricted_load(io.BytesIO(pickle.dumps(np.array([None, 1], dtype=object), protocol=5)))
    record = np.zeros(2, dtype=[("a", "f4"), ("b", "O")])  # a record with an object field
    with pytest.raises(CheckpointError, match="dtype .V12 .object/structured arrays are not allowed"):
        restricted_load(io.BytesIO(pickle.dumps(record)))


def test_doctored_numpy_state_refused():
    # a float32 dtype whose state sets the "has objects" flags: numpy would treat data as pointers
    bad_dtype = _Reduce(np.dtype, ("f4", False, True), (3, "<", None, None, None, -1, -1, 63))
    with pytest.raises(CheckpointError, match="refusing to load a doctored numpy.dtype"):
        restricted_load(io.BytesIO(pickle.dumps(bad_dtype)))
    # calling numpy.ndarray directly with an object dtype
    with pytest.raises(CheckpointError, match="refusing to load a direct call of numpy.ndarray"):
        restricted_load(io.BytesIO(pickle.dumps(_Reduce(np.ndarray, ((3,), "O")))))
    # BUILD on anything but a numpy array/dtype
    with pytest.raises(CheckpointError, match="refusing to load setting the state of a set"):
        restricted_load(io.BytesIO(pickle.dumps(_Reduce(set, ([1],), {"a": 1}))))


def test_restricted_load_plain_data_all_protocols():
    from collections import OrderedDict
    d = {"f32": np.arange(5, dtype=np.float32), "t": np.arange(6).reshape(2, 3).T, "s": np.float64(2.5),
         "b": np.True_, "u": np.array(["ab", "c"]), "set": {1, 2}, "fs": frozenset([3]), "by": b"xy",
         "e": b"", "ba": bytearray(b"z"), "c": 1 + 2j, "od": OrderedDict(a=1), "n": None, "tup": (1, "a")}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        r = restricted_load(io.BytesIO(pickle.dumps(d, protocol=protocol)))
        assert r.keys() == d.keys()
        for k, v in d.items():
            assert np.array_equal(r[k], v) if isinstance(v, np.ndarray) else r[k] == v, (protocol, k)
        assert type(r["od"]) is OrderedDict and r["t"].dtype == d["t"].dtype


def test_restricted_load_numpy1_names():
    data = pickle.dumps({"w": np.arange(3, dtype=np.float32), "s": np.float32(2)}, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data
    r = restricted_load(io.BytesIO(old))
    assert np.array_equal(r["w"], np.arange(3, dtype=np.float32)) and r["s"] == 2


# ----------------------------------------------------------------------------- broken files
def test_truncated_and_empty_files(tmp_path):
    layout = Layout((6, 4, 3))
    good = save_genome(tmp_path / "good.pkl", layout, _row(layout)).read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="cut.pkl.*truncated or not a pickle"):
        load_genome(cut)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.*truncated or not a pickle"):
        load_genome(empty)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not a pickle")
    with pytest.raises(CheckpointError, match="truncated or not a pickle"):
        load_genome(junk)
    with pytest.raises(CheckpointError, match="cannot open.*missing.pkl"):
        load_genome(tmp_path / "missing.pkl")


@pytest.mark.parametrize("obj, fragment", [
    ([1, 2, 3], "top level is a list"),
    ({"weights": [1.0]}, "top level is a dict with keys ['weights']"),
    ({"format": "other.thing", "version": 1}, "unknown checkpoint format 'other.thing'"),
])
def test_not_a_genome(tmp_path, obj, fragment):
    with pytest.raises(CheckpointError) as exc:
        load_genome(_dump(tmp_path / "x.pkl", obj))
    assert fragment in str(exc.value) and "understood formats" in str(exc.value)


@pytest.mark.parametrize("key", ["version", "layout", "weights", "trust", "metadata"])
def test_own_format_missing_key(tmp_path, key):
    layout = Layout((4, 3, 2))
    obj = _own(layout, _row(layout))
    del obj[key]
    with pytest.raises(CheckpointError, match=f"missing key '{key}'"):
        load_genome(_dump(tmp_path / "g.pkl", obj))


def test_own_format_bad_values(tmp_path):
    layout = Layout((4, 3, 2))
    w = _row(layout)
    cases = [
        (_own(layout, w[:-1]), r"weights must have shape \(n_params,\) of 4-3-2.* = \(23,\), got \(22,\)"),
        (_own(layout, w.reshape(1, -1)), r"got \(1, 23\)"),
        (_own(layout, np.where(np.arange(23) == 5, np.nan, w)), "weights contains 1 NaN/inf"),
        (_own(layout, w, version=2), "version 2, written by a newer genreg.*reads version 1"),
        (_own(layout, w, version="1"), "invalid format version '1'"),
        (_own(layout, w, layout={"sizes": [4, 0, 2]}), "invalid layout.*positive"),
        (_own(layout, w, layout={"sizes": [4, 3, 2], "hidden_activation": "swish"}), "invalid layout.*swish"),
        (_own(layout, w, trust="high"), "trust must be a finite number"),
        (_own(layout, w, metadata=[1]), "'metadata' must be a dict"),
        (_own(layout, w.astype(str)), "non-numeric"),
    ]
    for i, (obj, pattern) in enumerate(cases):
        with pytest.raises(CheckpointError, match=pattern):
            load_genome(_dump(tmp_path / f"g{i}.pkl", obj))


def _broken(edit):
    obj = _published(n_in=5, n_h=4, n_out=12)
    edit(obj)
    return obj


@pytest.mark.parametrize("edit, fragments", [
    (lambda o: o["controller"].pop("w2"), ["missing key 'controller.w2'"]),
    (lambda o: o["genome"].pop("trust"), ["missing key 'genome.trust'"]),
    (lambda o: o.pop("genome"), ["missing key 'genome'"]),
    (lambda o: o.pop("controller"), ["missing key 'controller'"]),
    (lambda o: o["controller"].update(w1=np.array(o["controller"]["w1"]).T.tolist()),
     ["'controller.w1'", "(hidden_size, input_size) = (4, 5)", "got (5, 4)"]),
    (lambda o: o["controller"]["w1"][2].pop(), ["'controller.w1'", "ragged"]),
    (lambda o: o["controller"]["b1"].append(0.0), ["'controller.b1'", "(4,)", "got (5,)"]),
    (lambda o: o["controller"]["b2"].pop(), ["'controller.b2'", "(12,)", "got (11,)"]),
    (lambda o: o["controller"]["w2"][0].__setitem__(1, "oops"), ["'controller.w2'", "non-numeric"]),
    (lambda o: o["controller"]["w2"][0].__setitem__(1, None), ["'controller.w2'", "non-numeric"]),
    (lambda o: o["controller"]["w2"][3].__setitem__(0, float("nan")), ["'controller.w2'", "NaN"]),
    (lambda o: o["controller"]["b1"].__setitem__(0, 1e300), ["'controller.b1'", "float32 range"]),
    (lambda o: o["controller"].update(hidden_size=0), ["'controller.hidden_size'", "positive integer"]),
    (lambda o: o["controller"].update(input_size=5.0), ["'controller.input_size'", "positive integer"]),
    (lambda o: o.update(controller=[1, 2]), ["'controller' must be a dict"]),
    (lambda o: o["genome"].update(trust="x"), ["'genome.trust'", "finite number"]),
])
def test_published_format_errors(tmp_path, edit, fragments):
    p = _dump(tmp_path / "pub.pkl", _broken(edit))
    with pytest.raises(CheckpointError) as exc:
        load_genome(p)
    msg = str(exc.value)
    assert str(p) in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


# ----------------------------------------------------------------------------- save refusals
def test_save_refuses_bad_weights_and_writes_nothing(tmp_path):
    layout = Layout((4, 3, 2))
    w = _row(layout)
    nan = w.copy()
    nan[3] = np.nan
    inf = w.copy()
    inf[0] = np.inf
    cases = [(nan, "NaN"), (inf, "NaN/inf"), (w[:-1], r"got \(22,\)"), (np.concatenate([w, w]), r"got \(46,\)")]
    for bad, pattern in cases:
        with pytest.raises(CheckpointError, match=pattern):
            save_genome(tmp_path / "g.pkl", layout, bad)
    with pytest.raises(CheckpointError, match="trust must be a finite number"):
        save_genome(tmp_path / "g.pkl", layout, w, trust=float("nan"))
    with pytest.raises(CheckpointError, match="metadata must be plain data.*refusing to load pathlib"):
        save_genome(tmp_path / "g.pkl", layout, w, metadata={"path": tmp_path})
    with pytest.raises(CheckpointError, match="metadata must be a dict"):
        save_genome(tmp_path / "g.pkl", layout, w, metadata=[1])
    with pytest.raises(CheckpointError, match="must be a genreg Layout"):
        save_genome(tmp_path / "g.pkl", (4, 3, 2), w)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file


def test_a_saved_genome_gets_the_mode_of_any_new_file(tmp_path):
    layout = Layout((3, 2, 2), "tanh")
    path = save_genome(tmp_path / "g.pkl", layout, np.zeros(layout.n_params, np.float32))
    (tmp_path / "plain.txt").write_text("x")
    assert os.stat(path).st_mode & 0o777 == os.stat(tmp_path / "plain.txt").st_mode & 0o777


def test_an_hdf5_file_is_named_for_what_it_is(tmp_path):
    import h5py

    with h5py.File(tmp_path / "state.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CheckpointError, match="is an HDF5 file, not a genome pickle"):
        load_genome(tmp_path / "state.h5")
