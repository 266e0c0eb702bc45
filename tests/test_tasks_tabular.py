"""Tabular loaders: the real wine / Boston files, broken files, splits, standardisation, the trig task."""

import numpy as np
import pytest

from genreg.tasks import tabular
from genreg.tasks.tabular import (
    BOSTON_COLUMNS,
    WINE_COLUMNS,
    load_boston,
    load_wine,
    make_splits,
    make_trig,
    read_numeric_csv,
    split_indices,
)
from genreg.errors import DataError


# ----------------------------------------------------------------------------- the real files


def test_boston_real_file(data_root):
    raw = read_numeric_csv(data_root / "boston-housing" / "boston_housing.csv", BOSTON_COLUMNS)
    assert raw.shape == (506, 14)
    s = load_boston(data_root, seed=3)
    assert s.n_inputs == 13
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 506
    assert s.X_train.dtype == np.float32 and s.y_train.shape == (len(s.y_train), 1)
    # Standardised with TRAINING statistics only: train columns have mean 0 and std 1 ...
    np.testing.assert_allclose(s.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(s.X_train.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(s.y_train.mean(), 0, atol=1e-5)
    # ... and the statistics are those of the training rows of the raw file.
    tr, va, te = split_indices(506, 3, 0.2, 0.2)
    np.testing.assert_allclose(s.x_mean, raw[tr, :-1].mean(axis=0))
    np.testing.assert_allclose(s.x_std, raw[tr, :-1].std(axis=0))
    np.testing.assert_allclose(s.targets_to_raw(s.y_val)[:, 0], raw[va, -1], rtol=1e-5)
    np.testing.assert_allclose(s.features_from_raw(raw[te, :-1]), s.X_test, atol=1e-5)
    assert 20 < s.y_mean[0] < 25  # MEDV in $1000s


def test_wine_real_files(data_root):
    red = load_wine(data_root, color="red", seed=0)
    white = load_wine(data_root / "wine-quality", color="white", seed=0)  # the folder itself works too
    both = load_wine(data_root, color="both", seed=0)
    assert sum(len(s.y_train) + len(s.y_val) + len(s.y_test) for s in (red,)) == 1599
    assert len(white.y_train) + len(white.y_val) + len(white.y_test) == 4898
    assert len(both.y_train) + len(both.y_val) + len(both.y_test) == 1599 + 4898
    assert red.feature_names == WINE_COLUMNS[:-1] and red.n_inputs == 11
    q = red.targets_to_raw(np.concatenate([red.y_train, red.y_val, red.y_test]))
    assert 3 <= q.min() and q.max() <= 9 and np.allclose(q, np.round(q), atol=1e-4)
    with pytest.raises(DataError, match="color"):
        load_wine(data_root, color="rose")


def test_split_is_deterministic_disjoint_and_covering():
    a = split_indices(100, 7, 0.2, 0.1)
    b = split_indices(100, 7, 0.2, 0.1)
    c = split_indices(100, 8, 0.2, 0.1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    joined = np.concatenate(a)
    assert sorted(joined.tolist()) == list(range(100))
    assert [len(x) for x in a] == [70, 20, 10]


def test_constant_column_is_only_centred():
    X = np.column_stack([np.arange(50.0), np.full(50, 4.0)])
    s = make_splits("t", X, np.arange(50.0), seed=0)
    assert s.x_std[1] == 1.0 and np.all(s.X_train[:, 1] == 0)


def test_trig_task():
    s = make_trig(500, seed=2)
    angles = np.concatenate([s.X_train, s.X_val, s.X_test]) * s.x_std + s.x_mean
    y = np.concatenate([s.y_train, s.y_val, s.y_test])
    assert angles.min() >= 0 and angles.max() <= 2 * np.pi + 1e-6
    np.testing.assert_allclose(y, np.cos(angles), atol=1e-5)  # the target is cos itself
    assert s.y_mean[0] == 0 and s.y_std[0] == 1
    assert len(np.unique(angles)) == 500
    np.testing.assert_array_equal(make_trig(500, seed=2).X_train, s.X_train)


def test_no_data_root_means_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("GENREG_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tabular.resolve_data_root() == (tmp_path / "xdg" / "genreg").resolve()
    with pytest.raises(DataError) as exc:
        load_boston(download=False)
    msg = str(exc.value)
    assert str((tmp_path / "xdg" / "genreg" / "boston-housing").resolve()) in msg and "the user cache" in msg
    assert "`genreg data download boston`" in msg and "GENREG_DATA" in msg
    assert not (tmp_path / "xdg").exists()


# ----------------------------------------------------------------------------- broken files

GOOD_ROW = ",".join(["1.5"] * 14)


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("", "empty file"),
        ("\n\n  \n", "empty file"),
        (GOOD_ROW + "\n" + ",".join(["1"] * 13) + "\n", r"row 2 has 13 columns, expected 14"),
        (GOOD_ROW + "\n" + GOOD_ROW + ",7\n", r"row 2 has 15 columns"),
        (GOOD_ROW + "\n" + GOOD_ROW.replace("1.5", "abc", 1) + "\n", r"row 2, column 1 \(CRIM\): 'abc' is not a number"),
        (GOOD_ROW + "\n" + "1," * 5 + ",1" + ",1" * 7 + "\n", r"row 2, column 6 \(RM\): '' is not a number"),
        (GOOD_ROW + "\n" + "1," * 13 + "nan\n", r"row 2, column 14 \(MEDV\): value 'nan' is not finite"),
        (GOOD_ROW + "\n" + "inf," + "1," * 12 + "1\n", r"row 2, column 1 \(CRIM\): value 'inf' is not finite"),
        (",".join(BOSTON_COLUMNS) + "\n" + GOOD_ROW + "\n", r"row 1, column 1 \(CRIM\).*no header row"),
    ],
    ids=["empty", "blank", "short-row", "long-row", "text-cell", "empty-cell", "nan", "inf", "header"],
)
def test_broken_boston_file(tmp_path, content, pattern):
    folder = tmp_path / "boston-housing"
    folder.mkdir()
    path = folder / "boston_housing.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=pattern) as exc:
        load_boston(tmp_path)
    assert str(path) in str(exc.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="files missing") as exc:
        load_wine(tmp_path, download=False)
    assert "winequality-red.csv" in str(exc.value) and "genreg data download wine" in str(exc.value)
    (tmp_path / "boston-housing" / "boston_housing.csv").mkdir(parents=True)
    with pytest.raises(DataError, match="not a regular file"):
        load_boston(tmp_path)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(DataError, match="not a text file"):
        read_numeric_csv(binary, BOSTON_COLUMNS)


def test_checksum(tmp_path):
    path = tmp_path / "boston_housing.csv"
    path.write_text(GOOD_ROW + "\n" + GOOD_ROW + "\n")
    digest = tabular._sha256(path)
    assert read_numeric_csv(path, BOSTON_COLUMNS, sha256=digest).shape == (2, 14)
    with pytest.raises(DataError, match="checksum mismatch"):
        read_numeric_csv(path, BOSTON_COLUMNS, sha256="0" * 64)


def test_too_few_rows_for_a_split(tmp_path):
    path = tmp_path / "boston_housing.csv"
    path.write_text(GOOD_ROW + "\n" + GOOD_ROW + "\n")
    with pytest.raises(DataError, match="too few"):
        load_boston(tmp_path)


def test_values_too_large_to_standardise_name_the_column():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    X[:, 1] *= 1e160  # the std overflows: before, the column silently scaled to 0
    with pytest.raises(DataError, match=r"task t: X column 'b': the training mean or standard deviation overflows float64"):
        tabular.make_splits("t", X, X[:, 0], seed=0, feature_names=("a", "b"))
    X[:, 1] = 1.7e308  # the mean overflows: before, the error named X_train row 1
    with pytest.raises(DataError, match=r"X column 'b': the training mean or standard deviation overflows"):
        tabular.make_splits("t", X, X[:, 0], seed=0, feature_names=("a", "b"))
    with pytest.raises(DataError, match=r"y column 1: the training mean or standard deviation overflows"):
        tabular.make_splits("t", X[:, :1], X[:, 0] * 1e300, seed=0)
