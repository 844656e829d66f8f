"""Little-endian encoding of the rasd protocol's values (see docs/protocol.md)."""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Any, Iterable, List, Sequence

HEADER = struct.Struct("<IHHI")
"""Frame header: payload length, message type, flags, request id."""

_BIG_ENDIAN = sys.byteorder == "big"


def _typecode(kind: str, size: int) -> str:
    for code in kind:
        if array(code).itemsize == size:
            return code
    raise RuntimeError(f"no array type of {size} bytes among {kind!r} on this platform")


U32 = _typecode("IL", 4)
I32 = _typecode("il", 4)
U64 = _typecode("QL", 8)
F32 = "f"


def as_list(values: Any) -> List[Any]:
    """A plain list from a list, tuple, array, NumPy array or PyTorch tensor."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    return values if isinstance(values, list) else list(values)


class Writer:
    """Appends protocol values to a bytearray."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def u8(self, v: int) -> None:
        self.buffer.append(v)

    def u16(self, v: int) -> None:
        self.buffer += struct.pack("<H", v)

    def u32(self, v: int) -> None:
        self.buffer += struct.pack("<I", v)

    def u64(self, v: int) -> None:
        self.buffer += struct.pack("<Q", v)

    def array(self, code: str, values: Iterable[Any], field: str) -> None:
        """Appends values of one type back to back (no count)."""
        try:
            a = array(code, values)
        except (OverflowError, TypeError) as error:
            raise ValueError(f"{field}: {error} (expected {_describe(code)})") from None
        if _BIG_ENDIAN:
            a.byteswap()
        self.buffer += a.tobytes()

    def counted(self, code: str, values: Sequence[Any], field: str) -> None:
        """Appends a u32 count, then the values."""
        self.u32(len(values))
        self.array(code, values, field)

    def short_string(self, s: str) -> None:
        data = s.encode("utf-8")
        if len(data) > 0xFFFF:
            raise ValueError(f"the name {s[:40]!r}... is longer than 65,535 bytes")
        self.u16(len(data))
        self.buffer += data


def _describe(code: str) -> str:
    return {U32: "unsigned 32-bit integers", I32: "signed 32-bit integers", F32: "floats", U64: "unsigned 64-bit integers"}.get(code, code)


class Reader:
    """Reads protocol values from a reply payload, checking bounds."""

    __slots__ = ("data", "offset", "what", "strict")

    def __init__(self, data: memoryview, what: str, strict: bool = True) -> None:
        self.data = data
        self.offset = 0
        self.what = what
        self.strict = strict
        """When False, :meth:`finish` accepts trailing bytes (fields of a newer minor version)."""

    def _need(self, n: int) -> None:
        if self.offset + n > len(self.data):
            raise ValueError(f"{self.what}: the reply ends early ({n} bytes needed, {len(self.data) - self.offset} left)")

    def u8(self) -> int:
        self._need(1)
        v = self.data[self.offset]
        self.offset += 1
        return v

    def u16(self) -> int:
        self._need(2)
        (v,) = struct.unpack_from("<H", self.data, self.offset)
        self.offset += 2
        return v

    def u32(self) -> int:
        self._need(4)
        (v,) = struct.unpack_from("<I", self.data, self.offset)
        self.offset += 4
        return v

    def u64(self) -> int:
        self._need(8)
        (v,) = struct.unpack_from("<Q", self.data, self.offset)
        self.offset += 8
        return v

    def array(self, code: str, count: int) -> List[Any]:
        a = array(code)
        size = a.itemsize * count
        self._need(size)
        a.frombytes(self.data[self.offset : self.offset + size])
        if _BIG_ENDIAN:
            a.byteswap()
        self.offset += size
        return a.tolist()

    def raw(self, count: int) -> bytes:
        self._need(count)
        v = bytes(self.data[self.offset : self.offset + count])
        self.offset += count
        return v

    def short_string(self) -> str:
        return self.raw(self.u16()).decode("utf-8")

    def long_string(self) -> str:
        return self.raw(self.u32()).decode("utf-8")

    def finish(self) -> None:
        if self.strict and self.offset != len(self.data):
            raise ValueError(f"{self.what}: {len(self.data) - self.offset} unexpected bytes at the end of the reply")
