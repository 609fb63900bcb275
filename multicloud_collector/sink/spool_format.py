"""The on-disk record format of the spool, and the scan that recovers a segment after a crash.

A record is a fixed header followed by the table name, the deduplication token and the exact batch
bytes. The header carries every length plus a CRC-32 over header fields and payload, so a reader
can tell a complete record from a torn one (the process was killed in the middle of a write) or a
damaged one (bit rot, a truncated copy) without trusting anything it has not checked.

Layout (little endian)::

    magic  "MCS1"      4 bytes
    table_len          u16
    token_len          u16
    rows               u32
    body_len           u32
    created            f64   (time.time() when the batch was sealed)
    crc32              u32   (over the 24 bytes above and table + token + body)
    table, token, body
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from enum import Enum

from multicloud_collector.sink.base import EncodedBatch

MAGIC = b"MCS1"
_HEAD = struct.Struct("<4sHHIId")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _CRC.size
MAX_BODY = 1 << 30  # a header claiming more than this is garbage, not a batch
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".log"


class RecordError(Exception):
    """A record on disk failed validation."""


def segment_name(seq: int) -> str:
    return f"{SEGMENT_PREFIX}{seq:016d}{SEGMENT_SUFFIX}"


def segment_seq(name: str) -> int | None:
    """The sequence number of a segment file name, or None for any other file."""
    if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
        return None
    digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def encode_record(batch: EncodedBatch) -> bytes:
    table = batch.table.encode()
    token = batch.token.encode()
    if len(table) > 0xFFFF or len(token) > 0xFFFF:
        raise ValueError("table name or token too long for a spool record")
    if len(batch.body) > MAX_BODY:
        raise ValueError(f"batch of {len(batch.body)} bytes is larger than a spool record can hold")
    head = _HEAD.pack(MAGIC, len(table), len(token), batch.rows, len(batch.body), batch.created)
    crc = zlib.crc32(batch.body, zlib.crc32(token, zlib.crc32(table, zlib.crc32(head))))
    return b"".join((head, _CRC.pack(crc), table, token, batch.body))


@dataclass(frozen=True, slots=True)
class RecordHeader:
    table_len: int
    token_len: int
    rows: int
    body_len: int
    created: float
    crc: int
    raw: bytes  # the 24 bytes the CRC starts with

    @property
    def size(self) -> int:
        return HEADER_SIZE + self.table_len + self.token_len + self.body_len


def parse_header(data: bytes) -> RecordHeader:
    if len(data) < HEADER_SIZE:
        raise RecordError("short header")
    magic, tl, kl, rows, bl, created = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise RecordError("bad magic")
    if bl > MAX_BODY or tl == 0 or kl == 0:
        raise RecordError("impossible lengths")
    (crc,) = _CRC.unpack_from(data, _HEAD.size)
    return RecordHeader(tl, kl, rows, bl, created, crc, bytes(data[: _HEAD.size]))


def decode_payload(header: RecordHeader, payload: bytes) -> EncodedBatch:
    """Check the CRC and rebuild the batch; raises ``RecordError`` when anything is off."""
    if len(payload) != header.table_len + header.token_len + header.body_len:
        raise RecordError("short payload")
    crc = zlib.crc32(payload, zlib.crc32(header.raw))
    if crc != header.crc:
        raise RecordError("checksum mismatch")
    t_end = header.table_len
    k_end = t_end + header.token_len
    try:
        table = payload[:t_end].decode()
        token = payload[t_end:k_end].decode()
    except UnicodeDecodeError:
        raise RecordError("table or token is not UTF-8") from None
    return EncodedBatch(
        table=table, body=payload[k_end:], rows=header.rows, token=token, created=header.created
    )


def read_record(fd: int, offset: int) -> EncodedBatch:
    """The record at ``offset`` of an open segment, validated."""
    header = parse_header(os.pread(fd, HEADER_SIZE, offset))
    want = header.size - HEADER_SIZE
    payload = os.pread(fd, want, offset + HEADER_SIZE)
    return decode_payload(header, payload)


class ScanEnd(Enum):
    CLEAN = "clean"  # the file ends exactly after the last record
    TORN = "torn"  # the last record is incomplete (killed mid-write)
    CORRUPT = "corrupt"  # a complete-looking record failed its checks


@dataclass(frozen=True, slots=True)
class ScannedRecord:
    offset: int
    size: int
    rows: int
    table: str
    created: float


@dataclass(slots=True)
class ScanResult:
    records: list[ScannedRecord]
    valid_end: int  # the file is good up to here; anything after it must be cut
    end: ScanEnd
    lost_rows: int = 0  # rows of a corrupt record whose header was readable


def scan_segment(path: str) -> ScanResult:
    """Walk a segment record by record, checking each CRC; stop at the first bad byte."""
    records: list[ScannedRecord] = []
    with open(path, "rb") as f:
        fd = f.fileno()
        file_size = os.fstat(fd).st_size
        offset = 0
        while offset < file_size:
            head = os.pread(fd, HEADER_SIZE, offset)
            if len(head) < HEADER_SIZE:
                return ScanResult(records, offset, ScanEnd.TORN)
            try:
                header = parse_header(head)
            except RecordError:
                return ScanResult(records, offset, ScanEnd.CORRUPT)
            if offset + header.size > file_size:
                return ScanResult(records, offset, ScanEnd.TORN)
            payload = os.pread(fd, header.size - HEADER_SIZE, offset + HEADER_SIZE)
            try:
                batch = decode_payload(header, payload)
            except RecordError:
                return ScanResult(records, offset, ScanEnd.CORRUPT, lost_rows=header.rows)
            records.append(ScannedRecord(offset, header.size, batch.rows, batch.table, batch.created))
            offset += header.size
    return ScanResult(records, offset, ScanEnd.CLEAN)
