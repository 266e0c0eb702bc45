"""Rendered capital letters: ``alphabet`` (GENREG's published task) and ``alphabet-fonts`` (held-out fonts).

``alphabet``: each capital A-Z drawn once, white on black, at a 64-pixel font size, its ink centred in a
100x100 field; grey levels are stored as ``uint8`` (read as pixel/255, in [0, 1]) and flattened to
10,000 inputs; 26 classes named "A".."Z".  GENREG drew with pygame's default font (FreeSans Bold);
matplotlib's bundled DejaVu Sans Bold stands in for it, rendered with Pillow.  One clean rendering per
letter is the published protocol, so train = validation = test = the same 26 images: 100% there is
*training* accuracy.  Every episode is those 26 images, whatever ``samples_per_class`` says.

``alphabet-fonts``: the same letters in every bundled face that draws them (:data:`FACES`, each with its
split): the *fonts* are split into training, validation and test fonts.  Training episodes take
``samples_per_class`` renderings of each letter from the training fonts, each turned, shifted and scaled
by a random affine map drawn from ``(seed, generation)`` (:class:`AugmentedSampler`); validation and test
images are the clean renderings in fonts evolution never sees.

The renderings are cached in ``<data root>/alphabet/renders-<key>.npz``, keyed by the font files'
bytes, the render parameters and :data:`RENDER_VERSION`; a stale or unreadable cache is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import string
import zipfile
from pathlib import Path

import numpy as np

from genreg.atomic import write_atomic
from genreg.errors import DataError
from genreg.tasks.base import CLASSIFICATION, Task

LETTERS = tuple(string.ascii_uppercase)
FIELD = 100  # pixels a side
FONT_SIZE = 64  # pixels
ALPHABET_FACE = "DejaVuSans-Bold.ttf"
RENDER_VERSION = 1  # bump when the rendering code changes what it draws
CACHE_FOLDER = "alphabet"

#: The bundled faces of ``alphabet-fonts`` and their split (file name -> "train" | "validation" | "test").
#: All draw A-Z as 26 distinct, non-empty letters (checked by :func:`qualifies`, tested).  The test
#: fonts are whole styles evolution never sees: a monospaced oblique, a serif italic, STIX bold and
#: Computer Modern sans.
FACES = {
    "DejaVuSans.ttf": "train", "DejaVuSans-Bold.ttf": "train", "DejaVuSans-Oblique.ttf": "train",
    "DejaVuSans-BoldOblique.ttf": "validation",
    "DejaVuSansMono.ttf": "train", "DejaVuSansMono-Bold.ttf": "train", "DejaVuSansMono-Oblique.ttf": "train",
    "DejaVuSansMono-BoldOblique.ttf": "test",
    "DejaVuSerif.ttf": "train", "DejaVuSerif-Bold.ttf": "train", "DejaVuSerif-BoldItalic.ttf": "validation",
    "DejaVuSerif-Italic.ttf": "test",
    "STIXGeneral.ttf": "train", "STIXGeneralItalic.ttf": "train", "STIXGeneralBolIta.ttf": "validation",
    "STIXGeneralBol.ttf": "test",
    "cmr10.ttf": "train", "cmb10.ttf": "train", "cmti10.ttf": "train", "cmtt10.ttf": "train",
    "cmmi10.ttf": "validation", "cmss10.ttf": "test",
}
#: Bundled faces whose A-Z pass the automatic checks but are not letters of a text face.
EXCLUDED = {"cmsy10.ttf": "TeX math symbols: its A-Z are calligraphic math capitals"}


def font_dir() -> Path:
    """matplotlib's bundled TrueType folder (``matplotlib.get_data_path()/fonts/ttf``)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _font(path: Path, size: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(path), size)
    except (OSError, ValueError) as exc:
        raise DataError(f"font file {path} cannot be read ({type(exc).__name__}: {exc})") from None


def render_letter(font, letter: str, field: int = FIELD) -> np.ndarray:
    """Draw ``letter`` white on black with the Pillow ``font``, its ink centred: ``(field, field) uint8``.

    An empty glyph gives an all-zero field; ink larger than the field raises ValueError.
    """
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (3 * field, 3 * field), 0)
    ImageDraw.Draw(canvas).text((field, field), letter, fill=255, font=font)
    ink = np.asarray(canvas)
    out = np.zeros((field, field), np.uint8)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return out
    glyph = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = glyph.shape
    if h > field or w > field:
        raise ValueError(f"letter {letter} is {w}x{h} pixels, larger than the {field}x{field} field")
    top, left = (field - h) // 2, (field - w) // 2
    out[top:top + h, left:left + w] = glyph
    return out


def render_face(path, size: int = FONT_SIZE, field: int = FIELD) -> np.ndarray:
    """The 26 capitals in the font file ``path``: ``(26, field*field) uint8``; DataError if unreadable."""
    path = Path(path)
    font = _font(path, size)
    try:
        return np.stack([render_letter(font, c, field).reshape(-1) for c in LETTERS])
    except (OSError, ValueError) as exc:
        raise DataError(f"font file {path} cannot be rendered ({exc})") from None


def maps_letters(path) -> bool:
    """Whether the font's character map sends each of A-Z to a glyph named as that letter."""
    from matplotlib.ft2font import FT2Font

    try:
        ft = FT2Font(str(path))
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(f"font file {path} cannot be read ({type(exc).__name__}: {exc})") from None
    charmap = ft.get_charmap()
    return all(ord(c) in charmap and ft.get_glyph_name(charmap[ord(c)]) == c for c in LETTERS)


def distinct_glyphs(images: np.ndarray) -> bool:
    """Whether all rows of ``images: (26, d)`` are non-empty and pairwise different."""
    return bool(images.any(axis=1).all()) and len({row.tobytes() for row in images}) == len(images)


def qualifies(path) -> bool:
    """Whether a font file draws A-Z as letters: its map names them, and it draws 26 distinct, non-empty glyphs."""
    return Path(path).name not in EXCLUDED and maps_letters(path) and distinct_glyphs(render_face(path))


def find_faces(folder=None) -> list[str]:
    """The ``.ttf`` files of ``folder`` (default :func:`font_dir`) that :func:`qualifies`, sorted."""
    folder = Path(folder) if folder is not None else font_dir()
    return sorted(p.name for p in folder.glob("*.ttf") if qualifies(p))


# ----------------------------------------------------------------------------- the cached set


def cache_key(paths, size: int = FONT_SIZE, field: int = FIELD) -> str:
    """sha256 (16 hex digits) of the font files' bytes, the render parameters, Pillow's and FreeType's
    versions and :data:`RENDER_VERSION`."""
    import PIL
    from PIL import features

    freetype = features.version("freetype2") or "-"  # the rasteriser Pillow draws with
    h = hashlib.sha256(f"v{RENDER_VERSION} size={size} field={field} pillow={PIL.__version__} "
                       f"freetype={freetype}\n".encode())
    for path in paths:
        path = Path(path)
        try:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError as exc:
            raise DataError(f"font file {path} cannot be read ({exc.strerror or exc})") from None
    return h.hexdigest()[:16]


def _writable(root: Path) -> bool:
    """Whether the cache may be written under ``root``: not a folder that grants nobody write
    permission (a read-only reference copy of the data stays untouched even for root)."""
    try:
        return not root.exists() or bool(root.stat().st_mode & 0o222)
    except OSError:
        return False


def rendered_set(faces, data_dir=None, *, folder=None) -> np.ndarray:
    """The 26 capitals in each of ``faces`` (file names in ``folder``, default :func:`font_dir`):
    ``(len(faces), 26, 10000) uint8``, read from or written to the data root's cache.

    A cache that cannot be read or written is skipped (the set is rendered in memory), and a data
    root without write permission bits is never written to.
    """
    folder = Path(folder) if folder is not None else font_dir()
    paths = [folder / f for f in faces]
    key = cache_key(paths)
    from genreg.tasks.datasets import resolve_root

    cache = resolve_root(data_dir) / CACHE_FOLDER / f"renders-{key}.npz"
    try:
        with np.load(cache, allow_pickle=False) as held:
            images = held["images"]
            if images.shape == (len(faces), len(LETTERS), FIELD * FIELD) and list(held["faces"]) == list(faces):
                return images
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):  # (a cut or flipped zip: rebuilt)
        pass
    images = np.stack([render_face(p) for p in paths])
    if not _writable(cache.parent.parent):
        return images
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, faces=np.array(list(faces)))
    try:
        write_atomic(cache, buffer.getvalue())
    except OSError:  # (a full disk: nothing is left behind, the set stays in memory)
        pass
    return images


# ----------------------------------------------------------------------------- tasks


class AlphabetTask(Task):
    """The published protocol: every episode is the 26 clean renderings (``samples_per_class`` is ignored)."""

    def sampler(self, samples_per_class: int, seed: int):
        return WholeSetSampler(self.X_train.shape[0])


class WholeSetSampler:
    """Every episode is every training row, in order."""

    def __init__(self, n_rows: int):
        self.n_rows = int(n_rows)

    @property
    def episode_size(self) -> int:
        return self.n_rows

    def indices(self, episode: int) -> np.ndarray:
        """``(n_rows,) int64``: 0..n_rows-1."""
        return np.arange(self.n_rows, dtype=np.int64)


def load_alphabet(data_dir=None) -> Task:
    """GENREG's alphabet task: the 26 capitals in DejaVu Sans Bold, train = validation = test."""
    X = rendered_set([ALPHABET_FACE], data_dir)[0]
    y = np.arange(len(LETTERS), dtype=np.int64)
    X.flags.writeable = False
    return AlphabetTask(name="alphabet", kind=CLASSIFICATION, X_train=X, y_train=y, X_val=X, y_val=y, X_test=X,
                        y_test=y, n_outputs=len(LETTERS), spec="alphabet",
                        source=f"{ALPHABET_FACE} (matplotlib), {FONT_SIZE}px, one rendering per letter; "
                               "train = validation = test (100% is training accuracy)",
                        classes=LETTERS, input_shape=(FIELD, FIELD))


# ----------------------------------------------------------------------------- held-out fonts

#: Augmentation of a training image (uniform ranges): rotation in degrees, shift as a fraction of the
#: field, scale factor.
ROTATION, SHIFT, SCALE = 15.0, 0.1, (0.8, 1.15)


def augment(images: np.ndarray, rng: np.random.Generator, rotation: float = ROTATION, shift: float = SHIFT,
            scale=SCALE) -> np.ndarray:
    """Turn, scale and shift each image about the field's centre by a map drawn from ``rng``.

    images: ``(n, FIELD*FIELD) uint8``; returns a new ``(n, FIELD*FIELD) uint8`` array (bilinear,
    black outside the field).  Draws 4 numbers per image, in order.
    """
    from scipy.ndimage import affine_transform

    n = images.shape[0]
    params = rng.uniform(size=(n, 4))
    out = np.empty_like(images)
    centre = (FIELD - 1) / 2.0
    for i in range(n):
        angle = np.deg2rad((2 * params[i, 0] - 1) * rotation)
        s = scale[0] + params[i, 1] * (scale[1] - scale[0])
        d = (2 * params[i, 2:] - 1) * shift * FIELD
        c, si = np.cos(angle), np.sin(angle)
        inverse = np.array([[c, si], [-si, c]]) / s  # output pixel -> input pixel
        offset = centre - inverse @ (centre + d)
        img = images[i].reshape(FIELD, FIELD).astype(np.float32)
        moved = affine_transform(img, inverse, offset=offset, order=1, mode="constant", cval=0.0)
        out[i] = np.clip(np.rint(moved), 0, 255).astype(np.uint8).reshape(-1)
    return out


class AugmentedSampler:
    """Balanced episodes of the training renderings, each image augmented afresh every episode.

    ``indices(g)``: ``k_per_class`` training rows of each letter (:class:`EpisodeSampler`);
    ``episode_inputs(X, idx, g)``: those rows of ``X`` turned, shifted and scaled by maps drawn
    from ``(seed, g, AUGMENTATION)`` — the episode hook every evolution run calls
    (``genreg.tasks.base.episode_inputs``).
    """

    def __init__(self, labels, k_per_class: int, seed: int, n_classes: int):
        from genreg.tasks.mnist import EpisodeSampler

        self.inner = EpisodeSampler(labels, k_per_class, seed, n_classes=n_classes)
        self.seed = int(seed)

    @property
    def episode_size(self) -> int:
        return self.inner.episode_size

    def indices(self, episode: int) -> np.ndarray:
        return self.inner.indices(episode)

    def episode_inputs(self, X: np.ndarray, idx: np.ndarray, episode: int) -> np.ndarray:
        """``(len(idx), d) uint8``: the rows ``X[idx]`` augmented for episode ``episode``."""
        from genreg.streams import AUGMENTATION, generator

        return augment(X[idx], generator(self.seed, int(episode), AUGMENTATION))


class AlphabetFontsTask(Task):
    """Letters in many fonts: augmented training fonts, clean held-out validation and test fonts."""

    def sampler(self, samples_per_class: int, seed: int):
        return AugmentedSampler(self.y_train, samples_per_class, seed, self.n_outputs)


def load_alphabet_fonts(data_dir=None, faces: dict | None = None, *, folder=None) -> Task:
    """``alphabet-fonts``: the 26 capitals in every face of ``faces`` (default :data:`FACES`, file ->
    split), split by font; DataError naming a face that does not draw 26 distinct, non-empty letters."""
    faces = dict(FACES if faces is None else faces)
    names = sorted(faces)
    images = rendered_set(names, data_dir, folder=folder)
    for name, face in zip(names, images):
        if not distinct_glyphs(face):
            raise DataError(f"font file {name}: does not draw A-Z as 26 distinct, non-empty glyphs")
    parts = {}
    for split in ("train", "validation", "test"):
        chosen = [i for i, n in enumerate(names) if faces[n] == split]
        if not chosen:
            raise DataError(f"task alphabet-fonts: no {split} fonts")
        X = images[chosen].reshape(-1, FIELD * FIELD)
        X.flags.writeable = False
        parts[split] = (X, np.tile(np.arange(len(LETTERS), dtype=np.int64), len(chosen)), len(chosen))
    (Xt, yt, nt), (Xv, yv, nv), (Xs, ys, ns) = parts["train"], parts["validation"], parts["test"]
    return AlphabetFontsTask(name="alphabet-fonts", kind=CLASSIFICATION, X_train=Xt, y_train=yt, X_val=Xv, y_val=yv,
                             X_test=Xs, y_test=ys, n_outputs=len(LETTERS), spec="alphabet-fonts",
                             source=f"{len(names)} matplotlib fonts at {FONT_SIZE}px: {nt} training fonts "
                                    f"(augmented each episode), {nv} validation and {ns} test fonts never trained on",
                             classes=LETTERS, input_shape=(FIELD, FIELD))
