"""Object framing between the engine and the store: compress, (encrypt), frame; verify on decode.

A frame is what a store holds for one chunk version (inside a pack)::

    offset size  field
    0      1     format version (1)
    1      1     flags: bit 0 = zstd-compressed payload, bit 1 = encrypted payload
    2      2     key slot (0 = platform default; reserved for customer keys)
    4      4     plaintext length, little-endian
    8      32    id: BLAKE3-256 of the plaintext
    40     ...   payload

The id names the *plaintext*, so the same content has the same id whatever the compression or key.
Every decode recomputes the id; a mismatch, a truncated frame or an undecodable payload raises
``IntegrityError`` — a caller never receives wrong bytes.

Encryption is a seam: a ``Cipher`` wraps the (compressed) payload. The default is no cipher; the
customer-managed-key issue plugs AES-256-GCM in here without touching the engine or the stores.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import blake3
import zstandard

from snapferry.errors import IntegrityError

FORMAT_VERSION = 1
HEADER = struct.Struct("<BBHI32s")
HEADER_SIZE = HEADER.size
ID_SIZE = 32
FLAG_ZSTD = 0x01
FLAG_ENCRYPTED = 0x02
MIN_GAIN = 1 / 16
"""Keep the compressed payload only when it saves at least this fraction of the plaintext."""


def content_id(content: bytes | memoryview) -> bytes:
    """BLAKE3-256 of content: the identity of a chunk version."""
    return blake3.blake3(content, max_threads=1).digest()


class Cipher(Protocol):
    """Encrypts frame payloads. ``key_slot`` names the key in the frame header."""

    key_slot: int

    def encrypt(self, object_id: bytes, payload: bytes) -> bytes:
        """Ciphertext for payload, bound to object_id (used as associated data)."""
        ...

    def decrypt(self, object_id: bytes, ciphertext: bytes) -> bytes:
        """Plain payload; raises IntegrityError if the ciphertext was altered."""
        ...


@dataclass(frozen=True)
class Encoded:
    """A frame ready for a store, as parts to be written one after another (so content is not
    copied just to be framed), and the id of the content it holds."""

    object_id: bytes
    parts: list[bytes | memoryview]

    @property
    def frame(self) -> bytes:
        """The frame as one bytes object."""
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)


class Codec:
    """Thread-safe encoder/decoder of frames. zstd level 1: the fastest level, and on disk-like
    data it already halves what is stored; compression is the dominant CPU cost of a seal."""

    def __init__(self, level: int = 1, cipher: Cipher | None = None) -> None:
        self._level = level
        self._cipher = cipher
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=self._level)
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    def encode(self, content: bytes | memoryview) -> Encoded:
        """Frame content."""
        return self.encode_parts([content])

    def encode_parts(self, parts: Sequence[bytes | memoryview]) -> Encoded:
        """Frame the concatenation of parts without building it: the id is hashed and the
        payload compressed part by part."""
        hasher = blake3.blake3(max_threads=1)
        length = 0
        for part in parts:
            hasher.update(part)
            length += len(part)
        oid = hasher.digest()
        flags = 0
        payload: list[bytes | memoryview] = list(parts)
        if length >= 512:
            stream = self._compressor().compressobj(size=length)
            packed = b"".join([stream.compress(p) for p in parts] + [stream.flush()])
            if len(packed) <= length * (1 - MIN_GAIN):
                payload, flags = [packed], FLAG_ZSTD
        slot = 0
        if self._cipher is not None:
            payload = [self._cipher.encrypt(oid, b"".join(payload))]
            flags |= FLAG_ENCRYPTED
            slot = self._cipher.key_slot
        return Encoded(oid, [HEADER.pack(FORMAT_VERSION, flags, slot, length, oid), *payload])

    def decode(
        self, frame: bytes | memoryview, expected_id: bytes, what: str = "object"
    ) -> bytes | memoryview:
        """The verified plaintext of frame (a view into frame when it was stored uncompressed:
        no copy). Raises IntegrityError naming ``what`` on any mismatch."""
        if len(frame) < HEADER_SIZE:
            raise IntegrityError(f"{what}: truncated frame ({len(frame)} bytes)")
        version, flags, _slot, length, oid = HEADER.unpack_from(frame)
        if version != FORMAT_VERSION or oid != expected_id:
            raise IntegrityError(f"{what}: frame header does not match (version {version})")
        body: bytes | memoryview = memoryview(frame)[HEADER_SIZE:]  # no copy until decoded
        try:
            if flags & FLAG_ENCRYPTED:
                if self._cipher is None:
                    raise IntegrityError(f"{what}: encrypted frame but no key configured")
                body = self._cipher.decrypt(oid, bytes(body))
            if flags & FLAG_ZSTD:
                body = self._decompressor().decompress(body, max_output_size=length)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what}: payload does not decompress ({exc})") from None
        if len(body) != length or content_id(body) != expected_id:
            raise IntegrityError(f"{what}: content does not match its id {expected_id.hex()[:16]}")
        return body


def frame_id(frame: bytes | memoryview) -> bytes:
    """The id recorded in a frame's header (unverified: use ``Codec.decode`` to trust it)."""
    if len(frame) < HEADER_SIZE:
        raise IntegrityError(f"truncated frame ({len(frame)} bytes)")
    return bytes(HEADER.unpack_from(frame)[4])
