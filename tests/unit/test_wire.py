"""The plain-data codec shared by the controller and guest sessions: it
round-trips plain data exactly, refuses everything else, and any bytes at all
either decode to plain data or raise WireError (nothing else)."""

from __future__ import annotations

import contextlib
import math
import pathlib
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_run.guest import wire

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(1 << 300), max_value=1 << 300)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)  # lone surrogates
)
plain = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with types preserved all the way down (1 is not True, [] is not ())."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@given(plain)
def test_plain_data_round_trips_exactly(value: Any) -> None:
    assert same(wire.decode(wire.encode(value)), value)


def test_special_floats_and_extremes() -> None:
    for v in (math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308):
        assert same(wire.decode(wire.encode(v)), v)
    assert math.isnan(wire.decode(wire.encode(math.nan)))
    assert math.copysign(1, wire.decode(wire.encode(-0.0))) == -1


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset(), object(), 1j, bytearray(b"x"), {1: "x"}, {("a",): 1}, print],
    ids=lambda v: type(v).__name__,
)
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(wire.WireError):
        wire.encode(value)
    with pytest.raises(wire.WireError):
        wire.encode([1, {"k": value}])


def test_subclasses_of_plain_types_are_refused() -> None:
    class Sneaky(str):
        def encode(self, *a: Any, **k: Any) -> bytes:  # type: ignore[override]
            raise AssertionError("host code ran")

    with pytest.raises(wire.WireError, match="Sneaky is not plain data"):
        wire.encode(Sneaky("x"))


def test_depth_is_limited_both_ways() -> None:
    deep: Any = []
    for _ in range(wire.MAX_DEPTH):
        deep = [deep]
    with pytest.raises(wire.WireError, match="nested deeper"):
        wire.encode(deep)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(wire.WireError):
        wire.encode(loop)
    with pytest.raises(wire.WireError, match="nested deeper"):
        wire.decode(b"l\x01" * (wire.MAX_DEPTH + 1) + b"N")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"i\x05\x01", "truncated"),
        (b"s\x02\xff\xfe", "not UTF-8"),
        (b"f\x03xyz", "bad float"),
        (b"l\xff\xff\xff\xff\x0f", "more items claimed"),
        (b"d\x01i\x01\x00N", "dict keys must be str"),
        (b"d\x02s\x01aNs\x01aN", "duplicate key"),
        (b"NN", "1 bytes after"),
        (b"?", "unknown tag"),
        (b"i" + b"\xff" * 11, "out of range"),
    ],
)
def test_malformed_input_is_a_wire_error(data: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode(data)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    try:
        value = wire.decode(data)
    except wire.WireError:
        return
    assert same(wire.decode(wire.encode(value)), value)


@settings(max_examples=300)
@given(plain, st.data())
def test_corrupted_encodings_decode_or_raise_wire_error(value: Any, data: st.DataObject) -> None:
    raw = bytearray(wire.encode(value))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(wire.WireError):  # decoding or WireError: nothing else
        wire.decode(bytes(raw[:cut]))


def test_frames_arrive_in_any_pieces() -> None:
    values = [("call", 1, "f", [1, 2.5, b"x"]), {"a": None}, "z" * 1000]
    stream = b"".join(wire.frame(v) for v in values)
    reader = wire.FrameReader()
    got: list[Any] = []
    for i in range(len(stream)):
        assert reader.need() >= 1
        got += reader.feed(stream[i : i + 1])
    assert all(same(a, b) for a, b in zip(got, values, strict=True)) and len(got) == 3


def test_frame_size_is_limited_both_ways() -> None:
    with pytest.raises(wire.WireError, match="more than the 10"):
        wire.frame("x" * 100, max_frame=10)
    reader = wire.FrameReader(max_frame=10)
    with pytest.raises(wire.WireError, match="over the limit"):
        reader.feed((11).to_bytes(4, "big"))


def test_messages_are_tuples_with_a_kind() -> None:
    assert wire.split(("result", 7, [1])) == ("result", (7, [1]))
    for bad in [(), [("x",)], ("",)[1:], (1, 2), "call"]:
        with pytest.raises(wire.WireError):
            wire.split(bad)


def test_the_guest_side_is_the_same_codec_under_pypy() -> None:
    # The guest runs this very file in PyPy 3.9: encode there, decode here,
    # and back.
    path = pathlib.Path(wire.__file__)
    value = {"k": [1, -(1 << 100), 2.5, "é\udc80", b"\x00", (None, True)]}
    script = (
        f"import sys; sys.path.insert(0, {str(path.parent)!r}); import wire\n"
        "data = sys.stdin.buffer.read()\n"
        "v = wire.decode(data)\n"
        "sys.stdout.buffer.write(wire.encode([v, v]))\n"
    )
    out = subprocess.run(
        ["pypy3", "-S", "-c", script], input=wire.encode(value), capture_output=True, check=True
    ).stdout
    assert same(wire.decode(out), [value, value])
