"""genreg.tasks.alphabet: rendered capitals, the bundled faces, the cache, augmentation, the episode hook."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from genreg.errors import DataError
from genreg.tasks import alphabet as ab
from genreg.tasks import load_task
from genreg.tasks.base import episode_inputs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("alphabet-root")


@pytest.fixture(scope="module")
def fonts_task(root):
    return load_task("alphabet-fonts", root)


def test_alphabet_task_is_the_published_protocol(root):
    task = load_task("alphabet", root)
    assert task.describe() == "alphabet: 10000 inputs, 26 classes; 26 train / 26 validation / 26 test"
    assert task.classes == tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ") and task.class_name(25) == "Z"
    assert task.X_train.dtype == np.uint8 and task.X_train.shape == (26, 10000) and task.input_shape == (100, 100)
    assert np.array_equal(task.y_train, np.arange(26))
    for part in ("val", "test"):  # one rendering per letter: train = validation = test
        assert np.array_equal(getattr(task, f"X_{part}"), task.X_train)
    assert "training accuracy" in task.source
    assert ab.distinct_glyphs(task.X_train)
    # every episode is the 26 images, whatever samples_per_class says
    for k in (1, 20):
        assert np.array_equal(task.sampler(k, 3).indices(7), np.arange(26))


def test_letters_are_centred_and_in_range(root):
    X = load_task("alphabet", root).X_train.reshape(26, 100, 100)
    for img in X:
        rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
        assert abs((rows[0] + rows[-1]) / 2 - 49.5) <= 1 and abs((cols[0] + cols[-1]) / 2 - 49.5) <= 1
        assert img.max() == 255  # white ink on black, read as pixel/255 in [0, 1]
        assert 30 <= rows[-1] - rows[0] + 1 <= 90  # a 64-pixel font size


def test_bundled_faces_found_automatically_equal_the_explicit_list():
    found = ab.find_faces()
    assert found == sorted(ab.FACES) and len(found) >= 20
    for bad in ("cmex10.ttf", "DejaVuSansDisplay.ttf", "STIXSizOneSymReg.ttf", "STIXNonUni.ttf",
                "LastResortHE-Regular.ttf", "cmsy10.ttf"):
        assert bad not in found


def test_symbol_and_display_fonts_fail_the_checks():
    d = ab.font_dir()
    assert not ab.maps_letters(d / "cmex10.ttf")  # A-Z map to delimiters
    assert not ab.distinct_glyphs(ab.render_face(d / "DejaVuSansDisplay.ttf"))  # draws nothing
    assert not ab.distinct_glyphs(ab.render_face(d / "LastResortHE-Regular.ttf"))  # one box for every letter


def test_every_face_draws_26_distinct_non_empty_glyphs(fonts_task, root):
    images = ab.rendered_set(sorted(ab.FACES), root)
    assert images.shape == (len(ab.FACES), 26, 10000) and images.dtype == np.uint8
    for name, face in zip(sorted(ab.FACES), images):
        assert ab.distinct_glyphs(face), name


def test_fonts_are_split_not_images(fonts_task):
    t = fonts_task
    counts = {s: sum(v == s for v in ab.FACES.values()) for s in ("train", "validation", "test")}
    assert counts["train"] >= 12 and counts["validation"] >= 3 and counts["test"] >= 3
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == tuple(26 * counts[s] for s in counts)
    train = {r.tobytes() for r in t.X_train}
    assert not train & {r.tobytes() for r in t.X_test} and not train & {r.tobytes() for r in t.X_val}
    assert np.array_equal(t.y_test, np.tile(np.arange(26), counts["test"]))


def test_rendered_set_is_cached_and_rebuilt_when_stale(root):
    faces = ["DejaVuSans-Bold.ttf"]
    first = ab.rendered_set(faces, root)
    cache = root / "alphabet" / f"renders-{ab.cache_key([ab.font_dir() / f for f in faces])}.npz"
    assert cache.is_file()
    cache.write_bytes(b"not an npz")  # unreadable: rendered again and rewritten
    assert np.array_equal(ab.rendered_set(faces, root), first)
    with np.load(cache) as held:
        assert np.array_equal(held["images"], first)


def test_cache_key_follows_font_bytes_and_version(tmp_path, monkeypatch):
    font = tmp_path / "f.ttf"
    shutil.copy(ab.font_dir() / "DejaVuSans.ttf", font)
    key = ab.cache_key([font])
    assert ab.cache_key([font]) == key
    monkeypatch.setattr(ab, "RENDER_VERSION", ab.RENDER_VERSION + 1)
    assert ab.cache_key([font]) != key
    monkeypatch.undo()
    font.write_bytes(font.read_bytes() + b"\0")
    assert ab.cache_key([font]) != key


def test_unreadable_font_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "broken.ttf"
    bad.write_bytes(b"not a font")
    with pytest.raises(DataError, match="broken.ttf") as err:
        ab.render_face(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="missing.ttf"):
        ab.load_alphabet_fonts(tmp_path, {"missing.ttf": "train"}, folder=tmp_path)


def test_a_face_that_draws_nothing_is_refused(tmp_path):
    folder = tmp_path / "fonts"
    folder.mkdir()
    for name in ("DejaVuSans.ttf", "DejaVuSansDisplay.ttf", "DejaVuSerif.ttf"):
        shutil.copy(ab.font_dir() / name, folder / name)
    faces = {"DejaVuSans.ttf": "train", "DejaVuSansDisplay.ttf": "validation", "DejaVuSerif.ttf": "test"}
    with pytest.raises(DataError, match="DejaVuSansDisplay.ttf.*distinct"):
        ab.load_alphabet_fonts(tmp_path, faces, folder=folder)


def test_augmentation_is_drawn_per_episode_from_the_seed(fonts_task):
    s = fonts_task.sampler(2, seed=5)
    idx = s.indices(3)
    assert idx.shape == (52,) and np.array_equal(np.bincount(fonts_task.y_train[idx]), np.full(26, 2))
    a = episode_inputs(s, fonts_task.X_train, idx, 3)
    assert a.dtype == np.uint8 and a.shape == (52, 10000)
    assert np.array_equal(a, episode_inputs(fonts_task.sampler(2, seed=5), fonts_task.X_train, idx, 3))
    assert not np.array_equal(a, episode_inputs(s, fonts_task.X_train, idx, 4))
    assert not np.array_equal(a, episode_inputs(fonts_task.sampler(2, seed=6), fonts_task.X_train, idx, 3))
    assert not np.array_equal(a, fonts_task.X_train[idx]) and a.any(axis=1).all()


def test_augment_with_no_movement_keeps_the_image():
    img = np.zeros((1, 10000), np.uint8)
    img[0, 30 * 100 + 20: 30 * 100 + 60] = 200  # a horizontal bar
    still = ab.augment(img, np.random.default_rng(0), rotation=0, shift=0, scale=(1.0, 1.0))
    assert np.array_equal(still, img)


def test_samplers_without_the_hook_take_rows_as_they_are():
    X = np.arange(20, dtype=np.uint8).reshape(10, 2)
    from genreg.tasks.base import BatchSampler

    s = BatchSampler(10, 4, seed=1)
    idx = s.indices(0)
    out = episode_inputs(s, X, idx, 0)
    assert np.array_equal(out, X[idx])


def test_a_read_only_data_root_gets_no_cache(tmp_path):
    """A data root that grants no write permission (a reference copy) is never written to, even by root."""
    from genreg.tasks.alphabet import ALPHABET_FACE, rendered_set

    root = tmp_path / "reference"
    root.mkdir()
    root.chmod(0o555)
    try:
        images = rendered_set([ALPHABET_FACE], root)
        assert images.shape == (1, 26, 10000)
        assert list(root.iterdir()) == []
    finally:
        root.chmod(0o755)


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_a_damaged_render_cache_is_rebuilt(root, damage):
    """A zip cut short or with a flipped byte raised zipfile's own errors, which no one caught."""
    faces = ["DejaVuSans-Bold.ttf"]
    first = ab.rendered_set(faces, root)
    cache = root / "alphabet" / f"renders-{ab.cache_key([ab.font_dir() / f for f in faces])}.npz"
    data = bytearray(cache.read_bytes())
    if damage == "cut":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    cache.write_bytes(bytes(data))
    assert np.array_equal(ab.rendered_set(faces, root), first)
    assert not [p.name for p in cache.parent.iterdir() if p.name.startswith(".")]  # rewritten, no temporary file
    with np.load(cache) as held:
        assert np.array_equal(held["images"], first)
