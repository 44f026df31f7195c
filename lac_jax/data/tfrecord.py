"""TFRecord files read without TensorFlow: framing, CRC32C checks, ``SequenceExample`` parsing.

A TFRecord file is a sequence of records, each

  uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data |
  uint32 masked_crc32c(data)

with ``masked(c) = ((c >> 15 | c << 17) + 0xa282ead8) mod 2**32`` and CRC32C the Castagnoli CRC
(reflected polynomial 0x82F63B78). Both CRCs are verified by default. The data CRC is computed with
a NumPy lane-parallel table algorithm (about 100 MB/s on one core); ``verify_crc=False`` skips it.
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Iterator, Optional, Union

import numpy as np

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8


def _make_table() -> np.ndarray:
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
  return table


_TABLE = _make_table()
_TABLE_LIST = [int(x) for x in _TABLE]


def _update_scalar(crc: int, data: bytes) -> int:
  """Byte-at-a-time raw register update (no pre/post inversion)."""
  table = _TABLE_LIST
  for b in data:
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc


@functools.lru_cache(maxsize=64)
def _zeros_operator(n: int) -> tuple[np.ndarray, ...]:
  """The linear map "append n zero bytes" on the raw register, as 4 byte-indexed tables.

  Appending zeros is GF(2)-linear in the register, so the image of each of the 32 basis bits
  determines it; ``op(r) = t0[r & 255] ^ t1[r >> 8 & 255] ^ t2[r >> 16 & 255] ^ t3[r >> 24]``.
  """
  basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
  for _ in range(n):
    basis = _TABLE[basis & 0xFF] ^ (basis >> 8)
  idx = np.arange(256, dtype=np.uint32)
  tables = []
  for k in range(4):
    bits = (idx[:, None] >> np.arange(8, dtype=np.uint32)[None, :]) & 1  # [256, 8]
    images = np.where(bits.astype(bool), basis[None, 8 * k : 8 * k + 8], np.uint32(0))
    tables.append(np.bitwise_xor.reduce(images, axis=1).astype(np.uint32))
  return tuple(tables)


def crc32c(data: Union[bytes, bytearray, memoryview], lanes: Optional[int] = None) -> int:
  """CRC32C (Castagnoli) of ``data``, standard init/final inversion.

  Long inputs are split into ``lanes`` equal chunks whose raw CRCs are computed in parallel with
  NumPy (one vector op per byte column); the chunk CRCs are combined with the precomputed
  "shift by chunk length" operator, using ``crc(A || B) = shift_|B|(crc(A)) ^ crc0(B)``.
  """
  data = memoryview(data).cast("B")
  n = len(data)
  crc = 0xFFFFFFFF
  if lanes is None:  # balances the per-column NumPy loop against the per-lane Python fold
    lanes = min(8192, max(64, int(2 * np.sqrt(n))))
  if n < max(4096, 4 * lanes):
    return _update_scalar(crc, data) ^ 0xFFFFFFFF
  width = n // lanes
  head = n - width * lanes
  crc = _update_scalar(crc, data[:head])
  cols = np.frombuffer(data, np.uint8, offset=head).reshape(lanes, width).T.copy()  # [width, lanes]
  regs = np.zeros(lanes, np.uint32)
  for col in cols:
    regs = _TABLE[(regs ^ col) & 0xFF] ^ (regs >> 8)
  t0, t1, t2, t3 = (t.tolist() for t in _zeros_operator(width))
  for r in regs.tolist():
    crc = (t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24]) ^ r
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: Union[bytes, bytearray, memoryview]) -> int:
  """TFRecord's masked CRC32C."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class TFRecordError(ValueError):
  """A corrupt or truncated TFRecord file (message names the file and record index)."""


def _read_one(f, path: str, index: int, verify_crc: bool) -> Optional[bytes]:
  """Reads the record at the file position; None at a clean end of file."""
  header = f.read(12)
  if not header:
    return None
  if len(header) < 12:
    raise TFRecordError(f"{path}: record {index}: truncated header ({len(header)} of 12 bytes)")
  length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
  if masked_crc32c(length_bytes) != length_crc:
    raise TFRecordError(f"{path}: record {index}: length CRC mismatch (corrupt file)")
  (length,) = struct.unpack("<Q", length_bytes)
  data = f.read(length)
  footer = f.read(4)
  if len(data) < length or len(footer) < 4:
    raise TFRecordError(f"{path}: record {index}: truncated data ({len(data)} of {length} bytes)")
  if verify_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
    raise TFRecordError(f"{path}: record {index}: data CRC mismatch (corrupt file)")
  return data


def iter_records_with_offsets(
  path: Union[str, os.PathLike], verify_crc: bool = True
) -> Iterator[tuple[int, bytes]]:
  """Yields ``(byte offset, data)`` of each record of a TFRecord file, in file order.

  Args:
    path: the TFRecord file (uncompressed).
    verify_crc: check the data CRC of each record (the length CRC is always checked).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    TFRecordError: truncated record or CRC mismatch (names the file and record index).
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    index = 0
    while True:
      offset = f.tell()
      data = _read_one(f, path, index, verify_crc)
      if data is None:
        return
      yield offset, data
      index += 1


def iter_records(path: Union[str, os.PathLike], verify_crc: bool = True) -> Iterator[bytes]:
  """Yields the data of each record of a TFRecord file (see ``iter_records_with_offsets``)."""
  for _, data in iter_records_with_offsets(path, verify_crc):
    yield data


def read_record_at(
  path: Union[str, os.PathLike], offset: int, index: int = -1, verify_crc: bool = True
) -> bytes:
  """Reads the one record that starts at byte ``offset`` (from ``iter_records_with_offsets``).

  Raises:
    TFRecordError: no valid record there (``index`` only names it in the message).
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    f.seek(offset)
    data = _read_one(f, path, index, verify_crc)
  if data is None:
    raise TFRecordError(f"{path}: record {index}: no record at byte offset {offset}")
  return data


def parse_sequence_example(data: bytes, what: str = "record"):
  """Parses serialized bytes as a ``tf.train.SequenceExample`` (tfds's bundled proto).

  Returns:
    ``tensorflow_datasets.proto.tf_example_generated_pb2.SequenceExample``.

  Raises:
    TFRecordError: the bytes are not a valid SequenceExample.
  """
  from google.protobuf import message  # pylint: disable=g-import-not-at-top

  # pylint: disable-next=g-import-not-at-top
  from tensorflow_datasets.proto import tf_example_generated_pb2

  proto = tf_example_generated_pb2.SequenceExample()
  try:
    proto.ParseFromString(data)
  except message.DecodeError as e:
    raise TFRecordError(f"{what}: not a valid SequenceExample: {e}") from e
  return proto
