"""Checked fields of genreg's HDF5 files: datasets stored with their CRC-32, whole-number attributes.

Every dataset genreg writes carries the CRC-32 of its bytes as its ``crc32`` attribute
(``write_dataset``); ``read_dataset`` checks it, so a flipped byte is an error, not other data.
A state checkpoint also carries the CRC-32 of all its attributes (``ATTRS_CRC``, ``attrs_crc32``):
its config, layout and scalars live there, where HDF5 keeps no checksum of its own.  A dataset
whose declared size is more than the memory available is refused before it is read.
"""

from __future__ import annotations

import numpy as np


def array_crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order): the checksum stored with every dataset genreg writes."""
    import zlib

    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def write_dataset(group, name: str, data) -> None:
    """``group[name] = data`` with its CRC-32 as the dataset's ``crc32`` attribute (``read_dataset`` checks it)."""
    data = np.asarray(data)
    group.create_dataset(name, data=data).attrs["crc32"] = array_crc32(data)


#: The attribute of a file's root holding the CRC-32 of every other attribute in the file.
ATTRS_CRC = "attrs_crc32"


def attrs_crc32(f) -> int:
    """CRC-32 of every attribute of the HDF5 file ``f`` (its root, groups and datasets, in path and name order)
    but ``ATTRS_CRC`` itself: each as its path, its name, its value's dtype and its bytes."""
    import zlib

    objects = {"/": f}
    f.visititems(lambda path, obj: objects.__setitem__(path, obj))
    crc = 0
    for path in sorted(objects):
        attrs = objects[path].attrs
        for name in sorted(attrs):
            if path == "/" and name == ATTRS_CRC:
                continue
            value = np.asarray(attrs[name])
            crc = zlib.crc32(f"{path}\0{name}\0{value.dtype.str}\0".encode(), crc)
            crc = zlib.crc32(value.tobytes(), crc)
    return crc


def check_attrs(f) -> None:
    """ValueError if ``f``'s attributes do not match the ``ATTRS_CRC`` it carries (files without one pass)."""
    if ATTRS_CRC in f.attrs and whole_attr(f.attrs[ATTRS_CRC], ATTRS_CRC) != attrs_crc32(f):
        raise ValueError("its attributes (config, layout, scalars) do not match their checksum: the file is damaged")


def read_dataset(group, name: str) -> np.ndarray:
    """``group[name]`` as an array; ValueError if it does not match its stored CRC-32 (files written
    before checksums existed have none and are read as they are), or if its declared size is more than the
    memory available (a damaged or hostile shape, refused before anything is allocated)."""
    from genreg.network.population import available_memory, format_bytes

    dataset = group[name]
    declared = float(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
    if declared > available_memory():
        raise ValueError(f"dataset {name} declares shape {dataset.shape} ({format_bytes(int(declared))}), more "
                         f"than the memory available: the file is damaged")
    data = dataset[()]
    if "crc32" in dataset.attrs and int(dataset.attrs["crc32"]) != array_crc32(np.asarray(data)):
        raise ValueError(f"dataset {name} does not match its checksum: the file is damaged")
    return data


def whole_attr(value, name: str) -> int:
    """A non-negative integer attribute (a scalar, not an array or a string)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}"[:120])
    return int(value)
