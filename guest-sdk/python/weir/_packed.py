"""The packed batch format of `packed-handler.process-packed`.

The byte layout is specified in `wit/README.md` ("Packed batches") and
checked against `guest-sdk/conformance/packed.json`; integers are
little-endian, lengths `u32` byte counts, timestamps `i64` ms:

    record = flags:u8 [timestamp:i64] [key_len:u32 key] value_len:u32 value
    output = 0:u8 record | 1:u8 name_len:u32 name record
           | 2:u8 input:u32 message_len:u32 message

The component exports `process-packed` besides `handler.process` because it
moves a batch each way as one `bytes`: componentize-py 0.25.1 does not free
the `bytes` nested in a returned `list<output>` (a Python UDF grew by the
size of its outputs until it hit its memory limit), and one buffer per call
costs fewer Python objects than one `StreamRecord` per record.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

_U32 = struct.Struct("<I")
# An emitted record's head, by which of key and timestamp it has: the tag
# (0 = emit), the flags, then the fields up to the key's or value's length.
_HEAD_PLAIN = struct.Struct("<BBI")  # tag, flags=0, value_len
_HEAD_KEY = struct.Struct("<BBI")  # tag, flags=1, key_len
_HEAD_TS = struct.Struct("<BBqI")  # tag, flags=2, timestamp, value_len
_HEAD_TS_KEY = struct.Struct("<BBqI")  # tag, flags=3, timestamp, key_len
_ERROR_HEAD = struct.Struct("<BII")  # tag=2, input, message_len


class PackedFormatError(ValueError):
    """Bytes that do not follow the packed batch format."""


_TS_LEN = struct.Struct("<qI")  # timestamp, then the key's or value's length


def decode_rows(data: bytes) -> List[Tuple[Optional[bytes], bytes, Optional[int]]]:
    """The records of a packed batch as `(key, value, timestamp)` tuples,
    in order: what the runtime iterates, without an object per record, and
    with one unpack for a timestamp and the length after it.

    Raises `PackedFormatError` when `data` is truncated or a record's flags
    have bits other than 0 (key) and 1 (timestamp) set."""
    rows: List[Tuple[Optional[bytes], bytes, Optional[int]]] = []
    append = rows.append
    u32 = _U32.unpack_from
    ts_len = _TS_LEN.unpack_from
    end = len(data)
    pos = 0
    try:
        while pos < end:
            flags = data[pos]
            if flags > 3:
                raise PackedFormatError(f"record flags {flags:#x} at byte {pos}: only bits 0 and 1 are defined")
            # The length after the flags (and timestamp) is the key's when
            # there is a key, else the value's.
            if flags & 2:
                timestamp, n = ts_len(data, pos + 1)
                pos += 13
            else:
                timestamp = None
                (n,) = u32(data, pos + 1)
                pos += 5
            key = None
            if flags & 1:
                if pos + n > end:
                    raise PackedFormatError(f"key of {n} bytes at byte {pos} passes the batch's end ({end})")
                key = data[pos : pos + n]
                pos += n
                (n,) = u32(data, pos)
                pos += 4
            if pos + n > end:
                raise PackedFormatError(f"value of {n} bytes at byte {pos} passes the batch's end ({end})")
            append((key, data[pos : pos + n], timestamp))
            pos += n
    except struct.error:
        raise PackedFormatError(f"batch truncated at byte {pos} of {end}") from None
    return rows


def _record(tag: int, key: Optional[bytes], value: bytes, timestamp: Optional[int]) -> bytes:
    if timestamp is None:
        if key is None:
            return _HEAD_PLAIN.pack(tag, 0, len(value)) + value
        return _HEAD_KEY.pack(tag, 1, len(key)) + key + _U32.pack(len(value)) + value
    if key is None:
        return _HEAD_TS.pack(tag, 2, timestamp, len(value)) + value
    return _HEAD_TS_KEY.pack(tag, 3, timestamp, len(key)) + key + _U32.pack(len(value)) + value


def emit(key: Optional[bytes], value: bytes, timestamp: Optional[int]) -> bytes:
    """An emitted record, packed."""
    return _record(0, key, value, timestamp)


def side(output: str, key: Optional[bytes], value: bytes, timestamp: Optional[int]) -> bytes:
    """A record for side output `output`, packed."""
    name = output.encode()
    # The record's own leading byte is its flags: pack it with tag 1 and
    # the name in front.
    record = _record(0, key, value, timestamp)
    return b"\x01" + _U32.pack(len(name)) + name + record[1:]


def error(index: int, message: str) -> bytes:
    """The error of input record `index`, packed."""
    text = message.encode()
    return _ERROR_HEAD.pack(2, index, len(text)) + text
