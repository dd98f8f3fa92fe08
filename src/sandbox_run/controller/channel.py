"""The channel between the guest's trusted bootstrap and the controller.

A unix stream socket; the guest's end is descriptor 3.  Messages are JSON
objects, each framed by its length as 4 big-endian bytes.  Everything that
arrives is the guest's word, never trusted: the decoder either returns
well-formed messages or raises ``ProtocolError`` (in the style of h11), and
the controller decides what a message may cause.

Guest -> controller messages (more come with the embedding API):

``{"op": "exception", "type": str, "message": str, "traceback": str}``
    the script ended with an uncaught exception (sent just before exit).
"""

from __future__ import annotations

import json
import struct
from typing import Any

MAX_FRAME = 1 << 20
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The guest sent something that is not a valid message (its fault)."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ValueError("message too large")
    return _LEN.pack(len(body)) + body


class Decoder:
    """Incremental decoder: feed bytes, get complete messages."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._buf)
            if size > self._max:
                raise ProtocolError(f"frame of {size} bytes exceeds {self._max}")
            if len(self._buf) < _LEN.size + size:
                break
            body = bytes(self._buf[_LEN.size : _LEN.size + size])
            del self._buf[: _LEN.size + size]
            try:
                msg = json.loads(body.decode())
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise ProtocolError("frame is not JSON") from None
            if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
                raise ProtocolError("a message is a JSON object with an 'op'")
            out.append(msg)
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def _text(msg: dict[str, Any], key: str, limit: int) -> str:
    v = msg.get(key, "")
    if not isinstance(v, str):
        raise ProtocolError(f"'{key}' must be a string")
    return v[:limit]


def exception_report(msg: dict[str, Any]) -> tuple[str, str, str]:
    """(type, message, traceback) from an "exception" message, bounded."""
    return (_text(msg, "type", 200), _text(msg, "message", 4000), _text(msg, "traceback", 64_000))
