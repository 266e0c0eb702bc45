"""Checked fields of genreg's HDF5 files: datasets stored with their CRC-32, whole-number attributes.

Every dataset genreg writes carries the CRC-32 of its bytes as its ``crc32`` attribute
(``write_dataset``); ``read_dataset`` checks it, so a flipped byte is an error, not other data.
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


def read_dataset(group, name: str) -> np.ndarray:
    """``group[name]`` as an array; ValueError if it does not match its stored CRC-32 (files written
    before checksums existed have none and are read as they are)."""
    dataset = group[name]
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
