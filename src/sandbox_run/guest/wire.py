"""Plain data on the wire between the controller and a guest session.

Used by both sides: the guest's bootstrap (PyPy 3.9, importing nothing) and
the controller (which imports this module; the guest never imports the
controller's).  Only plain data crosses: None, bool, int, float, str, bytes,
list, tuple, and dict with str keys, nested to ``MAX_DEPTH``.  Decoding builds
nothing but those types and runs no code of either side; anything else is a
``WireError`` (the sender's fault), never a crash, never a partial value.

Encoding, one tag byte then the value::

    N T F                    None, True, False
    i <len> <bytes>          int, signed little-endian, len bytes
    f <len> <ascii>          float, as float.hex() (exact, with inf and nan)
    s <len> <utf-8>          str (lone surrogates kept, "surrogatepass")
    b <len> <bytes>          bytes
    l <n> items              list          t <n> items     tuple
    d <n> (key value)*n      dict: each key a str item, no duplicates

``<len>`` and ``<n>`` are unsigned LEB128 varints.  A frame is a 4-byte
big-endian length and an encoded value; frames are at most ``MAX_FRAME``.
"""

TYPE_CHECKING = False  # typing is not imported at run time (guest start-up cost)
if TYPE_CHECKING:
    from typing import Any, List, Tuple

MAX_DEPTH = 64
MAX_FRAME = 16 << 20
_FRAME_HEADER = 4


class WireError(ValueError):
    """Not plain data, or not a valid encoding of it."""


# --- encoding -------------------------------------------------------------------


def _varint(n: int, out: "List[bytes]") -> None:
    while n >= 0x80:
        out.append(bytes(((n & 0x7F) | 0x80,)))
        n >>= 7
    out.append(bytes((n,)))


def _encode(value: "Any", out: "List[bytes]", depth: int) -> None:
    t = type(value)
    if value is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if value else b"F")
    elif t is int:
        size = (value + (value < 0)).bit_length() // 8 + 1
        out.append(b"i")
        _varint(size, out)
        out.append(value.to_bytes(size, "little", signed=True))
    elif t is float:
        text = value.hex().encode("ascii")
        out.append(b"f")
        _varint(len(text), out)
        out.append(text)
    elif t is str:
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s")
        _varint(len(data), out)
        out.append(data)
    elif t is bytes:
        out.append(b"b")
        _varint(len(value), out)
        out.append(value)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise WireError("nested deeper than %d" % MAX_DEPTH)
        out.append(b"l" if t is list else b"t")
        _varint(len(value), out)
        for item in value:
            _encode(item, out, depth + 1)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise WireError("nested deeper than %d" % MAX_DEPTH)
        out.append(b"d")
        _varint(len(value), out)
        for key, item in value.items():
            if type(key) is not str:
                raise WireError("dict keys must be str, not %s" % type(key).__name__)
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise WireError("%s is not plain data" % t.__name__)


def encode(value: "Any") -> bytes:
    """The encoding of ``value``, or WireError if it is not plain data."""
    out: "List[bytes]" = []
    try:
        _encode(value, out, 0)
    except RecursionError:
        raise WireError("nested too deeply") from None
    return b"".join(out)


def frame(value: "Any", max_frame: int = MAX_FRAME) -> bytes:
    """``value`` encoded and framed, or WireError if it is too large."""
    body = encode(value)
    if len(body) > max_frame:
        raise WireError("%d bytes is more than the %d a message may have" % (len(body), max_frame))
    return len(body).to_bytes(_FRAME_HEADER, "big") + body


# --- decoding -------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        n = 0
        shift = 0
        data = self.data
        while True:
            if self.pos >= len(data):
                raise WireError("truncated")
            byte = data[self.pos]
            self.pos += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                return n
            shift += 7
            if shift > 63:
                raise WireError("length out of range")

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise WireError("truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def count(self) -> int:
        # Every item takes at least one byte: a count beyond what is left is
        # a lie, refused before anything is allocated for it.
        n = self.varint()
        if n > len(self.data) - self.pos:
            raise WireError("more items claimed than bytes left")
        return n

    def value(self, depth: int) -> "Any":
        if self.pos >= len(self.data):
            raise WireError("truncated")
        tag = self.data[self.pos]
        self.pos += 1
        if tag == 0x4E:  # N
            return None
        if tag == 0x54:  # T
            return True
        if tag == 0x46:  # F
            return False
        if tag == 0x69:  # i
            return int.from_bytes(self.take(self.varint()), "little", signed=True)
        if tag == 0x66:  # f
            try:
                return float.fromhex(self.take(self.varint()).decode("ascii"))
            except (UnicodeDecodeError, ValueError, OverflowError):
                raise WireError("bad float") from None
        if tag == 0x73:  # s
            return self.text()
        if tag == 0x62:  # b
            return self.take(self.varint())
        if tag in (0x6C, 0x74, 0x64):  # l t d
            if depth >= MAX_DEPTH:
                raise WireError("nested deeper than %d" % MAX_DEPTH)
            n = self.count()
            if tag == 0x64:
                d = {}
                for _ in range(n):
                    if self.pos >= len(self.data) or self.data[self.pos] != 0x73:
                        raise WireError("dict keys must be str")
                    self.pos += 1
                    key = self.text()
                    if key in d:
                        raise WireError("duplicate key %r" % key[:50])
                    d[key] = self.value(depth + 1)
                return d
            items = [self.value(depth + 1) for _ in range(n)]
            return items if tag == 0x6C else tuple(items)
        raise WireError("unknown tag %r" % bytes((tag,)))

    def text(self) -> str:
        try:
            return self.take(self.varint()).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise WireError("str is not UTF-8") from None


def decode(data: bytes) -> "Any":
    """The value ``data`` encodes, or WireError."""
    r = _Reader(bytes(data))
    value = r.value(0)
    if r.pos != len(r.data):
        raise WireError("%d bytes after the value" % (len(r.data) - r.pos))
    return value


class FrameReader:
    """Incremental framing: ``feed`` bytes, get the complete values."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> "List[Any]":
        self._buf += data
        out = []
        while len(self._buf) >= _FRAME_HEADER:
            size = int.from_bytes(self._buf[:_FRAME_HEADER], "big")
            if size > self.max_frame:
                raise WireError("a frame of %d bytes is over the limit" % size)
            end = _FRAME_HEADER + size
            if len(self._buf) < end:
                break
            body = bytes(self._buf[_FRAME_HEADER:end])
            del self._buf[:end]
            out.append(decode(body))
        return out

    def need(self) -> int:
        """Bytes still missing from the frame being read (at least 1)."""
        if len(self._buf) < _FRAME_HEADER:
            return _FRAME_HEADER - len(self._buf)
        size = int.from_bytes(self._buf[:_FRAME_HEADER], "big")
        return max(1, _FRAME_HEADER + size - len(self._buf))


def split(message: "Any") -> "Tuple[str, Any]":
    """(kind, fields) of a message: a tuple whose first item is a str."""
    if type(message) is not tuple or not message or type(message[0]) is not str:
        raise WireError("a message is a tuple that starts with its kind")
    return message[0], message[1:]
