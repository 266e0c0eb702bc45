"""Bounds on what an unpickled checkpoint may expand to, checked before anything is converted.

A pickle can name one object many times (memo references), so a 2 KB file can
describe a nested list of 2**30 numbers or a metadata dict that prints as
gigabytes of JSON.  These checks count what a value *would* expand to — each
shared object counted as often as it is referenced, in time linear in the number of
distinct objects — and refuse it before ``np.asarray`` or ``json.dump`` expands it.
"""

from __future__ import annotations

import numbers

import numpy as np

from genreg.errors import CheckpointError

#: Metadata: at most this many values (containers, keys and leaves, shared ones counted each time) ...
MAX_METADATA_VALUES = 100_000
#: ... this many characters/bytes in all its strings, and this deep.
MAX_METADATA_CHARS = 10_000_000
MAX_DEPTH = 32
#: A checkpoint file larger than this is refused before it is read (a 784-64-10 genome is ~200 KB).
MAX_FILE_BYTES = 1 << 30

_CONTAINERS = (list, tuple, set, frozenset, dict)


def expanded_size(value, limit: int, where: str) -> tuple[int, int]:
    """``(values, chars)``: how many values ``value`` expands to (leaves, containers and dict keys,
    each shared object counted once per reference) and the characters of its strings.

    Stops counting past ``limit`` values (returns ``limit + 1``).  CheckpointError naming
    ``where`` if nesting is deeper than ``MAX_DEPTH`` or a container holds itself.
    """
    memo: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def size(v, depth: int) -> tuple[int, int]:
        if isinstance(v, np.ndarray):
            return int(v.size), int(v.nbytes) if v.dtype.kind in "SU" else 0
        if isinstance(v, (str, bytes, bytearray)):
            return 1, len(v)
        if not isinstance(v, _CONTAINERS):
            return 1, 0
        key = id(v)
        if key in memo:
            return memo[key]
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        if key in active:
            raise CheckpointError(f"{where} contains itself")
        active.add(key)
        items = [x for kv in v.items() for x in kv] if isinstance(v, dict) else v
        n, chars = 1, 0
        for item in items:
            a, b = size(item, depth + 1)
            n, chars = n + a, chars + b
            if n > limit:
                n = limit + 1
                break
        active.discard(key)
        memo[key] = (n, chars)
        return n, chars

    return size(value, 0)


def check_numbers(value, where: str, expected: int) -> None:
    """Refuse ``value`` (nested lists or an array meant to hold ``expected`` numbers) if it would
    expand to more values than that shape holds: before ``np.asarray`` builds it."""
    if isinstance(value, np.ndarray):
        return
    n, _ = expanded_size(value, expected * 2 + 64, where)
    if n > expected * 2 + 64:  # nested lists of ``expected`` numbers have fewer than 2 * expected values
        raise CheckpointError(f"{where} expands to more than {expected * 2 + 64} values; its shape holds {expected} "
                              "numbers (a crafted or corrupt file)")


def check_metadata(value, where: str) -> None:
    """Refuse metadata that would expand past ``MAX_METADATA_VALUES`` values or ``MAX_METADATA_CHARS``
    characters, or holds anything but plain values (None, bool, numbers, strings, bytes,
    containers of them, small numeric arrays)."""
    n, chars = expanded_size(value, MAX_METADATA_VALUES, where)
    if n > MAX_METADATA_VALUES:
        raise CheckpointError(f"{where} expands to more than {MAX_METADATA_VALUES:,} values (a crafted or corrupt file)")
    if chars > MAX_METADATA_CHARS:
        raise CheckpointError(f"{where} holds {chars:,} characters of text, more than {MAX_METADATA_CHARS:,}")
    _check_plain(value, where, set())


def _check_plain(v, where: str, seen: set) -> None:
    if v is None or isinstance(v, (bool, str, bytes, bytearray)):
        return
    if isinstance(v, numbers.Number):
        if isinstance(v, numbers.Integral) and abs(int(v)) > 1 << 64:
            raise CheckpointError(f"{where} holds an integer of {int(v).bit_length()} bits")
        return
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biufcSU":
            raise CheckpointError(f"{where} holds a numpy array of dtype {v.dtype}")
        return
    if isinstance(v, np.generic):
        return
    if isinstance(v, _CONTAINERS):
        if id(v) in seen:
            return
        seen.add(id(v))
        for item in ([x for kv in v.items() for x in kv] if isinstance(v, dict) else v):
            _check_plain(item, where, seen)
        return
    raise CheckpointError(f"{where} holds a {type(v).__name__}, not plain data")
