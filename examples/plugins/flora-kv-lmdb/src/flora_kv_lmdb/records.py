"""How entries are laid out in a store's LMDB environment (format 1).

LMDB keys are at most 511 bytes (``Environment.max_key_size()`` of every py-lmdb build), flora's keys
at most 512. So an entry lives under its key's first ``HEAD_BYTES`` bytes, the *head*, and the LMDB
value under a head is a *bucket*: the entries whose keys start with that head, each with the rest of
its key (the *suffix*: empty for every key of up to 511 bytes, one byte for a key of 512), sorted by
suffix. A bucket almost always holds one entry; keys stay in byte order (LMDB compares heads with
memcmp, and keys sharing a head differ only in their suffix).

Named databases of the environment:

* ``kv``: head -> bucket;
* ``exp`` (dupsort): 8-byte expiration (big-endian, offset by 2**63 so that order is numeric) -> the
  heads whose bucket holds an entry expiring then, so finding what expired reads only the index;
* ``meta``: ``format`` -> ``b"1"``, ``bytes`` -> the store's size for quotas (signed 8 bytes), kept
  in the same write transaction as every change of ``kv``.

A bucket is its entries one after another::

    suffix length (u16) | suffix | flags (u8: 1 expiration, 2 metadata)
    | [expiration (i64)] | [metadata length (u32) | metadata JSON] | value length (u32) | value

all big-endian, text as UTF-8.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FORMAT = b"1"
HEAD_BYTES = 511
HAS_EXPIRATION = 1
HAS_METADATA = 2
EXP_OFFSET = 1 << 63

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")


class CorruptRecord(ValueError):
    """A bucket that does not parse (a file written by something else)."""


@dataclass
class Record:
    expiration: int | None
    metadata: str | None  # JSON text, None = no metadata
    value: bytes | None  # None when the bucket was read without values
    value_len: int


def split(key: bytes) -> tuple[bytes, bytes]:
    """(head, suffix) of a key's UTF-8 bytes."""
    return key[:HEAD_BYTES], key[HEAD_BYTES:]


def exp_key(expiration: int) -> bytes:
    return (expiration + EXP_OFFSET).to_bytes(8, "big")


def exp_of(key: bytes) -> int:
    return int.from_bytes(key, "big") - EXP_OFFSET


def decode(buf, with_values: bool = True) -> dict[bytes, Record]:
    """The entries of a bucket (``bytes`` or a ``memoryview`` into the map), by suffix in byte order.
    Without values, a value's bytes are skipped, not copied."""
    view = memoryview(buf)
    out: dict[bytes, Record] = {}
    pos = 0
    try:
        while pos < len(view):
            (n,) = _U16.unpack_from(view, pos)
            pos += 2
            suffix = bytes(view[pos : pos + n])
            pos += n
            flags = view[pos]
            pos += 1
            expiration = None
            if flags & HAS_EXPIRATION:
                (expiration,) = _I64.unpack_from(view, pos)
                pos += 8
            metadata = None
            if flags & HAS_METADATA:
                (n,) = _U32.unpack_from(view, pos)
                pos += 4
                metadata = bytes(view[pos : pos + n]).decode("utf-8")
                pos += n
            (n,) = _U32.unpack_from(view, pos)
            pos += 4
            if pos + n > len(view):
                raise CorruptRecord("value runs past the end of the bucket")
            value = bytes(view[pos : pos + n]) if with_values else None
            pos += n
            out[suffix] = Record(expiration, metadata, value, n)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise CorruptRecord(str(exc)) from None
    return out


def encode(bucket: dict[bytes, Record]) -> bytes:
    parts: list[bytes] = []
    for suffix in sorted(bucket):
        rec = bucket[suffix]
        assert rec.value is not None, "a bucket is written with its values"
        flags = (HAS_EXPIRATION if rec.expiration is not None else 0) | (HAS_METADATA if rec.metadata is not None else 0)
        parts += [_U16.pack(len(suffix)), suffix, bytes([flags])]
        if rec.expiration is not None:
            parts.append(_I64.pack(rec.expiration))
        if rec.metadata is not None:
            meta = rec.metadata.encode("utf-8")
            parts += [_U32.pack(len(meta)), meta]
        parts += [_U32.pack(len(rec.value)), rec.value]
    return b"".join(parts)
