"""The stored layout of a bucket's numbers: each array in the narrowest width that holds it.

A bucket's sketch bins and exact values are small integers or a few floats, yet the first
layout stored every number as a float64: 75 KB a bucket of 770 events at 10M, most of the
cost of writing, reading and merging buckets on PostgreSQL. Here each array is written with
a one-byte width code and then its values as uint8, uint16, uint32 or float64: sketch keys as
steps from the previous key (sorted and unique, so mostly 1 or 2), counts as they are, exact
values as integers when they are whole (tokens, costs, durations) and float64 otherwise
(ratios). Every value reads back bit for bit, so exact percentiles stay exact.

A blob of this layout starts with the byte `VERSION`; the first layout started with the
float64 1.0 (a zero byte first), so both are told apart and read.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["VERSION", "Reader", "Writer"]

VERSION: Final = 2
_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
# Width code -> the dtype written; the code is the item size, 8 standing for float64.
_DTYPES: Final[dict[int, np.dtype[np.generic]]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<f8"),
}
_LIMITS: Final = ((1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF))


def _code(values: npt.NDArray[np.generic], *, whole: bool) -> int:
    """The narrowest width code whose dtype holds every value exactly (`whole`: the values
    are known to be integers, so only their range is checked)."""
    if values.size == 0:
        return 1
    if whole:
        if values.min() < 0:
            return 8  # never written by this server; kept exact all the same
    elif np.signbit(values).any() or not np.array_equal(values, np.trunc(values)):
        return 8  # negative (-0.0 too), fractional, NaN or inf: float64 keeps them as they are
    high = float(values.max())
    return next((code for code, limit in _LIMITS if high <= limit), 8)


class Writer:
    """Builds one blob: a version byte, then numbers and arrays in the order written."""

    def __init__(self) -> None:
        self._parts: list[bytes] = [bytes([VERSION])]

    def numbers(self, *values: int) -> None:
        """Fixed int64 numbers (counts, lengths, a first key)."""
        self._parts.append(struct.pack(f"<{len(values)}q", *values))

    def array(self, values: npt.NDArray[np.generic], *, whole: bool = False) -> None:
        """An array of numbers in its narrowest exact width (its length is written apart).

        `whole`: the caller knows them to be integers (counts, steps, token counts): only
        their range is checked, not each value's fraction.
        """
        code = _code(values, whole=whole)
        self._parts.append(bytes([code]))
        self._parts.append(values.astype(_DTYPES[code]).tobytes())

    def steps(self, keys: _Ints) -> None:
        """Sorted unique keys: the first as a number, then each step from the one before."""
        self.numbers(int(keys[0]) if keys.size else 0)
        steps = np.zeros_like(keys)
        np.subtract(keys[1:], keys[:-1], out=steps[1:])
        self.array(steps, whole=True)

    def blob(self) -> bytes:
        """The blob written so far."""
        return b"".join(self._parts)


class Reader:
    """Reads a blob written by `Writer`, in the same order."""

    def __init__(self, blob: bytes) -> None:
        if not blob or blob[0] != VERSION:
            raise ValueError("not a blob of this layout")
        self._blob = blob
        self._at = 1

    def numbers(self, count: int) -> list[int]:
        """`count` int64 numbers."""
        values = struct.unpack_from(f"<{count}q", self._blob, self._at)
        self._at += 8 * count
        return list(values)

    def _raw(self, size: int) -> npt.NDArray[np.generic]:
        dtype = _DTYPES[self._blob[self._at]]
        values = np.frombuffer(self._blob, dtype=dtype, count=size, offset=self._at + 1)
        self._at += 1 + dtype.itemsize * size
        return values

    def array(self, size: int) -> _Floats:
        """An array of `size` numbers, as float64."""
        floats: _Floats = self._raw(size).astype(np.float64)
        return floats

    def ints(self, size: int) -> _Ints:
        """An array of `size` whole numbers (written with `whole`), as int64."""
        ints: _Ints = self._raw(size).astype(np.int64)
        return ints

    def steps(self, size: int) -> _Ints:
        """`size` keys written by `Writer.steps`."""
        [first] = self.numbers(1)
        keys: _Ints = np.cumsum(self.ints(size))
        keys += first
        return keys
