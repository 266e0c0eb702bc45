"""csv:PATH and npz:PATH tasks: kinds, class mapping, splits, scaling from the training rows, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import DataError
from genreg.tasks import CLASSIFICATION, REGRESSION, EpisodeSampler, load_task
from genreg.tasks.files import MAX_INTEGER_CLASSES


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(c) for c in r) + "\n" for r in rows))
    return path


def animals_csv(tmp_path, n_per_class=20):
    """60 rows: id (the row's number), two numeric features, and a string label (dog, cat, emu order)."""
    rng = np.random.default_rng(0)
    names = ["dog", "cat", "emu"]
    rows = []
    for i in range(3 * n_per_class):
        c = i % 3
        rows.append([i, f"{rng.normal(c, 0.5):.4f}", f"{rng.normal(10 * c, 3):.4f}", names[c]])
    return write_csv(tmp_path / "animals.csv", ["id", "length", "weight", "animal"], rows), rows


def row_ids(task, X):
    """The id column of standardised rows X, back in raw units."""
    return np.rint(X[:, 0].astype(np.float64) * task.x_std[0] + task.x_mean[0]).astype(int)


# ----------------------------------------------------------------------------- CSV classification


def test_csv_string_labels(tmp_path):
    path, rows = animals_csv(tmp_path)
    t = load_task(f"csv:{path}", target="animal", seed=4)
    assert (t.kind, t.n_outputs, t.classes) == (CLASSIFICATION, 3, ("cat", "dog", "emu"))  # sorted
    assert (t.name, t.spec, t.source, t.target) == ("animals", f"csv:{path.resolve()}", str(path.resolve()), "animal")
    assert t.feature_names == ("id", "length", "weight") and t.n_inputs == 3
    assert "3 classes of 'animal'" in t.describe() and "not all numbers" in t.describe()
    # 60/20/20, stratified: 12 / 4 / 4 of each class
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (36, 12, 12)
    for y, n in ((t.y_train, 12), (t.y_val, 4), (t.y_test, 4)):
        assert y.dtype == np.int64 and np.bincount(y).tolist() == [n, n, n]
    # every row keeps its own label, mapped through the sorted class names
    ids = [row_ids(t, X) for X in (t.X_train, t.X_val, t.X_test)]
    assert np.array_equal(np.sort(np.concatenate(ids)), np.arange(60))
    for part_ids, y in zip(ids, (t.y_train, t.y_val, t.y_test)):
        assert [t.classes[label] for label in y] == [rows[i][3] for i in part_ids]


def test_csv_standardised_with_training_rows_only(tmp_path):
    path, rows = animals_csv(tmp_path)
    t = load_task(f"csv:{path}", target="animal", seed=4)
    raw = np.array([[float(c) for c in r[:3]] for r in rows])
    train_ids = row_ids(t, t.X_train)
    assert np.allclose(t.x_mean, raw[train_ids].mean(axis=0)) and np.allclose(t.x_std, raw[train_ids].std(axis=0))
    assert not np.allclose(t.x_mean, raw.mean(axis=0))  # not the whole file's statistics
    assert t.X_train.dtype == np.float32 and np.allclose(t.X_train.mean(axis=0), 0, atol=1e-5)
    val_ids = row_ids(t, t.X_val)
    assert np.allclose(t.X_val, (raw[val_ids] - t.x_mean) / t.x_std, atol=1e-5)
    assert np.allclose(t.features_from_raw(raw[val_ids]), t.X_val, atol=1e-6)


def test_csv_split_follows_seed(tmp_path):
    path, _ = animals_csv(tmp_path)
    a = load_task(f"csv:{path}", target="animal", seed=1)
    b = load_task(f"csv:{path}", target="animal", seed=1)
    c = load_task(a.spec, target="animal", seed=2)
    assert np.array_equal(a.X_val, b.X_val) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(row_ids(a, a.X_val), row_ids(c, c.X_val))


def test_csv_sampler_balanced(tmp_path):
    path, _ = animals_csv(tmp_path)
    t = load_task(f"csv:{path}", target="animal")
    sampler = t.sampler(samples_per_class=5, seed=3)
    assert isinstance(sampler, EpisodeSampler) and sampler.n_classes == 3 and sampler.episode_size == 15
    for episode in range(4):
        idx = sampler.indices(episode)
        assert np.array_equal(t.y_train[idx], np.repeat(np.arange(3), 5))
        assert all(np.unique(idx[c * 5:(c + 1) * 5]).size == 5 for c in range(3))
    with pytest.raises(DataError, match="too few"):
        t.sampler(samples_per_class=13, seed=0)  # 12 training rows per class


def test_csv_integer_classes_sorted_numerically(tmp_path):
    rows = [[i, v] for i, v in enumerate([10, 2, 7] * 6)]
    t = load_task(f"csv:{write_csv(tmp_path / 'ints.csv', ['x', 'grade'], rows)}", target="grade")
    assert t.kind == CLASSIFICATION and t.classes == ("2", "7", "10")
    assert "3 distinct integers" in t.kind_reason
    ids = np.rint(t.X_train[:, 0] * t.x_std[0] + t.x_mean[0]).astype(int)
    assert [t.classes[c] for c in t.y_train] == [str(rows[i][1]) for i in ids]


@pytest.mark.parametrize("values, why", [
    ([0.5, 1.25, 2.0, 3.5] * 5, "not all whole numbers"),
    (list(range(MAX_INTEGER_CLASSES + 1)) * 2, f"{MAX_INTEGER_CLASSES + 1} distinct integer values"),
    ([1, 2, 3] * 5 + [4], "4 is seen only once"),
])
def test_csv_regression_rule(tmp_path, values, why):
    rows = [[i, v] for i, v in enumerate(values)]
    t = load_task(f"csv:{write_csv(tmp_path / 'r.csv', ['x', 'y'], rows)}", target="y")
    assert t.kind == REGRESSION and why in t.kind_reason and why in t.describe()


def test_csv_regression_targets_standardised_from_train(tmp_path):
    rng = np.random.default_rng(1)
    raw = np.round(rng.normal(50, 10, size=(40, 3)), 3)
    rows = [[f"{a}", f"{b}", f"{c}"] for a, b, c in raw]
    t = load_task(f"csv:{write_csv(tmp_path / 'price.csv', ['a', 'b', 'price'], rows)}", target="price", seed=5)
    assert (t.kind, t.n_outputs, t.loss) == (REGRESSION, 1, "mse")
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (24, 8, 8)
    assert t.y_train.shape == (24, 1) and t.y_train.dtype == np.float32

    def ids(X):  # rows are identified by their first feature
        a = X[:, 0] * t.x_std[0] + t.x_mean[0]
        return [int(np.argmin(np.abs(raw[:, 0] - v))) for v in a]

    train, val = ids(t.X_train), ids(t.X_val)
    assert np.allclose(t.y_mean, raw[train, 2].mean()) and np.allclose(t.y_std, raw[train, 2].std())
    assert np.allclose(t.targets_to_raw(t.y_val)[:, 0], raw[val, 2], atol=1e-3)
    assert np.allclose(t.y_train.mean(), 0, atol=1e-5)


def test_csv_kind_override(tmp_path):
    rows = [[i, i % 3] for i in range(30)]
    path = write_csv(tmp_path / "k.csv", ["x", "y"], rows)
    assert load_task(f"csv:{path}", target="y").kind == CLASSIFICATION
    t = load_task(f"csv:{path}", target="y", kind="regression")
    assert t.kind == REGRESSION and t.kind_reason == "kind given"
    path = write_csv(tmp_path / "s.csv", ["x", "y"], [[i, "ab"[i % 2]] for i in range(10)])
    with pytest.raises(DataError, match=r"row 2, column 2 \(y\): 'a' is not a number"):
        load_task(f"csv:{path}", target="y", kind="regression")


# ----------------------------------------------------------------------------- bad CSV files


def test_csv_missing_target(tmp_path):
    path, _ = animals_csv(tmp_path)
    with pytest.raises(DataError) as info:
        load_task(f"csv:{path}", target="species")
    msg = str(info.value)
    assert str(path) in msg and "'species'" in msg and "id, length, weight, animal" in msg
    for target in (None, ""):
        with pytest.raises(DataError, match="--target"):
            load_task(f"csv:{path}", target=target)


@pytest.mark.parametrize("text, match", [
    ("a,b,y\n1,2,x\n1,abc,y\n", r"row 3, column 2 \(b\): 'abc' is not a number"),
    ("a,b,y\n1,2,x\n\n,3,y\n", r"row 4, column 1 \(a\): empty cell"),
    ("a,b,y\n1,inf,x\n", r"row 2, column 2 \(b\): value 'inf' is not finite"),
    ("a,b,y\n1,2,x\n1,2\n", r"row 3 has 2 cells, the header 3"),
    ("a,b,y\n1,2,\n", r"row 2, column 3 \(y\): empty cell"),
    ("a,a,y\n1,2,x\n", r"column name 'a' appears twice"),
    (",a,y\n0,2,x\n", r"column 1 has no name"),
    ("a,b,y\n", r"no data rows"),
    ("", r"empty file"),
    ("y\n1\n2\n", r"the only column"),
])
def test_csv_bad_files(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        load_task(f"csv:{path}", target="y")
    assert str(path) in str(info.value)


def test_csv_not_found_and_not_text(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_task(f"csv:{tmp_path / 'nope.csv'}", target="y")
    (tmp_path / "bin.csv").write_bytes(b"a,y\n\xff\xfe\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_task(f"csv:{tmp_path / 'bin.csv'}", target="y")


# ----------------------------------------------------------------------------- npz


def test_npz_x_y_pixels_and_integer_labels(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, size=(50, 4, 4), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "img.npz", X=X, y=y)
    t = load_task(f"npz:{tmp_path / 'img.npz'}", seed=3)
    assert (t.kind, t.n_outputs, t.input_shape, t.n_inputs) == (CLASSIFICATION, 5, (4, 4), 16)
    assert t.spec == f"npz:{(tmp_path / 'img.npz').resolve()}" and t.name == "img"
    assert t.X_train.dtype == np.uint8 and t.x_mean is None  # pixels stay pixels
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (30, 10, 10)
    assert np.bincount(t.y_val).tolist() == [2] * 5
    flat = X.reshape(50, 16)
    for Xp, yp in ((t.X_train, t.y_train), (t.X_val, t.y_val), (t.X_test, t.y_test)):
        rows = [int(np.flatnonzero((flat == r).all(axis=1))[0]) for r in Xp]
        assert np.array_equal(yp, y[rows])


def test_npz_given_parts_regression(tmp_path):
    rng = np.random.default_rng(3)
    parts = {k: rng.normal(5, 2, size=(n, 3)) for k, n in (("X_train", 40), ("X_val", 10), ("X_test", 12))}
    targets = {f"y_{k[2:]}": v @ [1.0, -2.0, 0.5] for k, v in parts.items()}
    np.savez(tmp_path / "reg.npz", **parts, **targets)
    t = load_task(f"npz:{tmp_path / 'reg.npz'}")
    assert (t.kind, t.n_outputs) == (REGRESSION, 1)
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (40, 10, 12)  # used as given, nothing carved
    mean, std = parts["X_train"].mean(axis=0), parts["X_train"].std(axis=0)
    assert np.allclose(t.x_mean, mean) and np.allclose(t.x_std, std)
    assert np.allclose(t.X_val, (parts["X_val"] - mean) / std, atol=1e-5)
    assert t.y_test.shape == (12, 1)
    assert np.allclose(t.targets_to_raw(t.y_test)[:, 0], targets["y_test"], atol=1e-4)
    assert np.allclose(t.y_mean, targets["y_train"].mean())


def test_npz_missing_parts_carved_from_train(tmp_path):
    X, y = np.arange(100.0).reshape(50, 2), np.arange(50) % 2
    np.savez(tmp_path / "a.npz", X_train=X, y_train=y)
    t = load_task(f"npz:{tmp_path / 'a.npz'}")
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (30, 10, 10)
    np.savez(tmp_path / "b.npz", X_train=X, y_train=y, X_test=X[:7], y_test=y[:7])
    t = load_task(f"npz:{tmp_path / 'b.npz'}")
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (40, 10, 7)


@pytest.mark.parametrize("arrays, match", [
    ({"data": np.zeros(3)}, r"no array 'X'.*keys found: data"),
    ({"X": np.zeros((3, 2))}, r"no array 'y'.*keys found: X"),
    ({"X_train": np.zeros((3, 2)), "labels": np.zeros(3)}, r"no array 'y_train'.*keys found: X_train, labels"),
    ({"X": np.zeros((4, 2)), "y": np.zeros(4), "X_train": np.zeros((4, 2))}, "keep one layout"),
    ({"X_train": np.zeros((9, 2)), "y_train": np.zeros(9), "X_val": np.zeros((2, 2))}, "X_val is given without y_val"),
    ({"X": np.zeros((5, 2)), "y": np.zeros(4)}, r"X has 5 rows but y has shape \(4,\)"),
    ({"X": np.array([[0.0, np.nan]] * 6), "y": np.zeros(6)}, r"X has a non-finite value \(nan\) in row 0"),
    ({"X": np.array([[1 + 2j]] * 6), "y": np.zeros(6)}, "real numbers"),
    ({"X_train": np.zeros((9, 2)), "y_train": np.zeros(9), "X_val": np.zeros((2, 3)), "y_val": np.zeros(2)},
     "X_val has 3 features per row, X_train 2"),
])
def test_npz_bad_arrays(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match) as info:
        load_task(f"npz:{path}")
    assert str(path) in str(info.value)


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([[1.0], [2.0]]), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"array 'y' holds Python objects") as info:
        load_task(f"npz:{path}")
    assert str(path) in str(info.value)


def test_npz_not_an_archive(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"single array \(\.npy\)"):
        load_task(f"npz:{tmp_path / 'one.npy'}")
    (tmp_path / "text.npz").write_text("X,y\n1,2\n")
    with pytest.raises(DataError, match="not an .npz archive"):
        load_task(f"npz:{tmp_path / 'text.npz'}")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match="broken.npz"):
        load_task(f"npz:{tmp_path / 'broken.npz'}")
    with pytest.raises(DataError, match="csv: tasks only"):
        load_task(f"npz:{tmp_path / 'one.npy'}", target="y")


# ----------------------------------------------------------------------------- values too large to standardise


def numeric_rows(n=40, seed=0):
    """``n`` rows of three numbers a, b, y (y = a + b + noise), as floats."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    return np.stack([a, b, a + b + rng.normal(0, 0.1, size=n)], axis=1)


@pytest.mark.parametrize("scale", [1e160, 1e200])
def test_csv_huge_column_refused_naming_it(tmp_path, scale):
    data = numeric_rows()
    data[:, 1] *= scale
    path = write_csv(tmp_path / "huge.csv", ["a", "b", "y"], [[repr(float(v)) for v in r] for r in data])
    with pytest.raises(DataError) as info:
        load_task(f"csv:{path}", target="y")
    msg = str(info.value)
    big = int(np.argmax(np.abs(data[:, 1])))
    assert str(path) in msg and "column 'b': values up to" in msg and "too large to standardise" in msg
    assert f"{abs(data[big, 1]):.1e}" in msg and f"(row {big + 2})" in msg and "\n" not in msg


def test_csv_overflowing_mean_names_the_row_of_the_value(tmp_path):
    data = numeric_rows()
    data[[3, 4], 1] = 1.7e308  # the mean overflows: every scaled value of the column is inf or nan
    path = write_csv(tmp_path / "e308.csv", ["a", "b", "y"], [[repr(float(v)) for v in r] for r in data])
    with pytest.raises(DataError, match=r"column 'b': values up to 1\.7e\+308 \(row [56]\) are too large"):
        load_task(f"csv:{path}", target="y")


def test_csv_huge_regression_target_refused(tmp_path):
    data = numeric_rows()
    data[:, 2] *= 1e300
    path = write_csv(tmp_path / "t.csv", ["a", "b", "price"], [[repr(float(v)) for v in r] for r in data])
    with pytest.raises(DataError, match=r"column 'price': values up to .*e\+30\d \(row \d+\) are too large"):
        load_task(f"csv:{path}", target="price")


def test_npz_huge_features_and_targets_refused(tmp_path):
    data = numeric_rows(60)
    np.savez(tmp_path / "hx.npz", X=data[:, :2] * [1.0, 1e300], y=data[:, 2])
    with pytest.raises(DataError, match=r"hx\.npz: X\[:, 1\]: values up to .*e\+300 \(X\[\d+, 1\]\) are too large"):
        load_task(f"npz:{tmp_path / 'hx.npz'}")
    np.savez(tmp_path / "hy.npz", X=data[:, :2], y=data[:, 2] * 1e300)
    with pytest.raises(DataError, match=r"hy\.npz: y: values up to .*e\+300 \(y\[\d+\]\) are too large"):
        load_task(f"npz:{tmp_path / 'hy.npz'}")
    ok = data.copy()
    ok[:, 0] *= 1e38  # large but standardisable: kept, and scaled as before
    np.savez(tmp_path / "ok.npz", X=ok[:, :2], y=ok[:, 2])
    t = load_task(f"npz:{tmp_path / 'ok.npz'}")
    assert np.isfinite(t.X_train).all() and np.allclose(t.X_train.std(axis=0), 1, atol=1e-5)


def test_npz_test_value_too_far_for_float32_names_it(tmp_path):
    data = numeric_rows(60)
    X_test = data[:10, :2].copy()
    X_test[3, 1] = 1e300
    np.savez(tmp_path / "far.npz", X_train=data[:, :2], y_train=data[:, 2], X_test=X_test, y_test=data[:10, 2])
    with pytest.raises(DataError, match=r"X_train\[:, 1\]: value 1e\+300 \(X_test\[3, 1\]\) is .* too far to fit in "
                                        r"float32"):
        load_task(f"npz:{tmp_path / 'far.npz'}")


# ----------------------------------------------------------------------------- a numeric target with holes


def target_csv(tmp_path, values, name="t.csv"):
    rows = [[i, f"{0.1 * i:.2f}", v] for i, v in enumerate(values)]
    return write_csv(tmp_path / name, ["id", "a", "y"], rows)


@pytest.mark.parametrize("mark", ["NA", "n/a", "null", "?", "missing"])
def test_csv_numeric_target_with_a_missing_mark(tmp_path, mark):
    values = [f"{v:.3f}" for v in np.random.default_rng(0).normal(size=200)]
    values[3] = mark
    path = target_csv(tmp_path, values)
    with pytest.raises(DataError) as info:
        load_task(f"csv:{path}", target="y")
    msg = str(info.value)
    assert msg.startswith(f"{path.resolve()}: row 5, column 3 (y): {mark!r} is not a number, in a numeric target column")
    assert "199 of 200 values are numbers" in msg and "remove or fill the row" in msg


def test_csv_integer_classes_with_missing_marks(tmp_path):
    values = [str(i % 3) for i in range(60)]
    for i in (7, 20, 41):
        values[i] = "NA"
    with pytest.raises(DataError, match=r"row 9, column 3 \(y\): 'NA' is not a number, in a numeric target column"):
        load_task(f"csv:{target_csv(tmp_path, values)}", target="y")
    values[20] = "oops"  # one stray word among 60 numbers: still a numeric column with holes? no: 3 of 60 > 1 %
    t = load_task(f"csv:{target_csv(tmp_path, values, 'words.csv')}", target="y")
    assert t.kind == CLASSIFICATION and t.classes == ("0", "1", "2", "NA", "oops")


def test_csv_string_classes_are_not_holes(tmp_path):
    regions = load_task(f"csv:{target_csv(tmp_path, ['EU', 'NA', 'AS'] * 10)}", target="y")
    assert regions.kind == CLASSIFICATION and regions.classes == ("AS", "EU", "NA")
    mixed = load_task(f"csv:{target_csv(tmp_path, ['1', '2', 'other'] * 10, 'm.csv')}", target="y")
    assert mixed.classes == ("1", "2", "other")
    given = load_task(f"csv:{target_csv(tmp_path, ['1', '2'] * 15 + ['NA'] * 2, 'k.csv')}", target="y",
                      kind="classification")
    assert given.classes == ("1", "2", "NA")


# ----------------------------------------------------------------------------- a CSV without a header row


def test_csv_without_header_row_gets_a_hint(tmp_path):
    path, rows = animals_csv(tmp_path)
    path.write_text("".join(",".join(str(c) for c in r) + "\n" for r in rows))  # no header line
    with pytest.raises(DataError) as info:
        load_task(f"csv:{path}", target="animal")
    msg = str(info.value)
    assert "no column 'animal'" in msg and "no header row" in msg and "first line must name the columns" in msg
    assert "\n" not in msg
    path.write_text("0,0,1\n1,2,1\n")
    with pytest.raises(DataError, match="appears twice in the header row.*no header row"):
        load_task(f"csv:{path}", target="y")
    good, _ = animals_csv(tmp_path)
    with pytest.raises(DataError) as info:
        load_task(f"csv:{good}", target="species")
    assert "no header row" not in str(info.value)  # a real header: no hint


# ----------------------------------------------------------------------------- integer labels not numbered from 0


@pytest.mark.parametrize("values", [(1, 2), (0, 1_000_000), (-1, 1), (0, 5)])
def test_npz_integer_labels_not_from_zero_are_numbered_in_order(tmp_path, values):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = np.where(X[:, 0] > 0, values[1], values[0])
    np.savez(tmp_path / "l.npz", X=X, y=y)
    t = load_task(f"npz:{tmp_path / 'l.npz'}")
    assert (t.kind, t.n_outputs, t.classes) == (CLASSIFICATION, 2, tuple(str(v) for v in values))
    raw_first = t.X_train[:, 0] * t.x_std[0] + t.x_mean[0]
    assert np.array_equal(t.y_train, (raw_first > 0).astype(np.int64))
    sampler = t.sampler(samples_per_class=10, seed=0)
    assert sampler.n_classes == 2 and sampler.episode_size == 20


def test_npz_labels_from_zero_keep_their_numbers(tmp_path):
    y = np.arange(60) % 4
    np.savez(tmp_path / "z.npz", X=np.random.default_rng(1).normal(size=(60, 2)), y=y)
    t = load_task(f"npz:{tmp_path / 'z.npz'}")
    assert (t.n_outputs, t.classes) == (4, ()) and set(np.unique(t.y_train)) == {0, 1, 2, 3}


# ----------------------------------------------------------------------------- one class only


def test_single_class_refused(tmp_path):
    path = target_csv(tmp_path, ["cat"] * 30)
    with pytest.raises(DataError, match=r"every label in column 'y' is 'cat'; a classification task needs at least "
                                        r"2 classes") as info:
        load_task(f"csv:{path}", target="y")
    assert str(path.resolve()) in str(info.value)
    with pytest.raises(DataError, match=r"every label in column 'y' is '3'"):
        load_task(f"csv:{target_csv(tmp_path, ['3'] * 30, 'i.csv')}", target="y")
    for y, name in ((np.zeros(30, int), "0"), (np.full(30, 7), "7"), (np.ones(30, bool), "1")):
        np.savez(tmp_path / "one.npz", X=np.random.default_rng(0).normal(size=(30, 2)), y=y)
        with pytest.raises(DataError, match=rf"one\.npz: every label in y is '{name}'; .*at least 2 classes"):
            load_task(f"npz:{tmp_path / 'one.npz'}")


# ----------------------------------------------------------------------------- too few examples of a class


def test_too_few_examples_names_the_class_and_the_fix(tmp_path):
    rows = [[f"{0.1 * i:.2f}", "bird" if i < 5 else ("cat" if i % 2 else "dog")] for i in range(65)]
    path = write_csv(tmp_path / "rare.csv", ["a", "animal"], rows)
    t = load_task(f"csv:{path}", target="animal")
    n_birds = int(np.sum(t.y_train == t.classes.index("bird")))
    with pytest.raises(DataError) as info:
        t.sampler(samples_per_class=10, seed=0)
    msg = str(info.value)
    assert f"too few in class 'bird': {n_birds};" in msg and "class 0" not in msg
    assert f"lower samples_per_class to {n_birds} (--set samples_per_class={n_birds})" in msg


def test_class_only_in_test_labels_is_named(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "unseen.npz", X_train=rng.normal(size=(40, 2)), y_train=np.array(["cat", "dog"] * 20),
             X_test=rng.normal(size=(6, 2)), y_test=np.array(["bird", "cat", "dog"] * 2))
    t = load_task(f"npz:{tmp_path / 'unseen.npz'}")
    with pytest.raises(DataError) as info:
        t.sampler(samples_per_class=2, seed=0)
    msg = str(info.value)
    assert "class 'bird': 0 (found only in the test labels, not in training)" in msg
    assert "samples_per_class=" not in msg and "every class needs training examples" in msg
