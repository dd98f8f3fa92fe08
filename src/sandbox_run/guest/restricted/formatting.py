"""``str.format``, ``str.format_map`` and ``string.Formatter`` with guarded fields.

The built-in ``str.format`` follows ``{0.attr}`` and ``{0[key]}`` inside the
interpreter, where no guard can see it: ``"{0.__globals__}".format(f)``
would print a trusted namespace.  Untrusted code gets this formatter instead
(the checker routes ``x.format`` here when ``x`` is a string).  It parses with
the interpreter's own ``_string`` helpers, so field syntax, conversions,
nested specs and automatic numbering behave as in ``str.format``; each
attribute step goes through the same guard as ``getattr``.  Values are looked
up once and formatted from that result (no second traversal that could see a
different object).
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found, unused-ignore]

from . import guards

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Any, List, Mapping, Sequence, Tuple


def _lookup(obj: Any, rest: Any) -> Any:
    for is_attr, key in rest:
        obj = guards.read(obj, key) if is_attr else obj[key]
    return obj


def _convert(value: Any, conversion: Any) -> Any:
    if conversion is None:
        return value
    if conversion == "s":
        return str(value)
    if conversion == "r":
        return repr(value)
    if conversion == "a":
        return ascii(value)
    raise ValueError("Unknown conversion specifier %s" % conversion)


class _Auto:
    __slots__ = ("next", "manual")

    def __init__(self) -> None:
        self.next = 0
        self.manual = False


def _vformat(
    fmt: str, args: Sequence[Any], kwargs: Mapping[str, Any], depth: int, auto: _Auto
) -> str:
    if depth < 0:
        raise ValueError("Max string recursion exceeded")
    out: List[str] = []
    for literal, field, spec, conversion in _string.formatter_parser(fmt):
        if literal:
            out.append(literal)
        if field is None:
            continue
        first, rest = _string.formatter_field_name_split(field)
        if first == "":
            if auto.manual:
                raise ValueError(
                    "cannot switch from manual field specification to automatic field numbering"
                )
            first = auto.next
            auto.next += 1
        elif isinstance(first, int):
            if auto.next:
                raise ValueError(
                    "cannot switch from automatic field numbering to manual field specification"
                )
            auto.manual = True
        if isinstance(first, int):
            try:
                obj = args[first]
            except IndexError:
                raise IndexError(
                    "Replacement index %d out of range for positional args tuple" % first
                ) from None
        else:
            obj = kwargs[first]
        obj = _convert(_lookup(obj, rest), conversion)
        if spec:
            spec = _vformat(spec, args, kwargs, depth - 1, auto)
        out.append(format(obj, spec or ""))
    return "".join(out)


def safe_format(fmt: str, *args: Any, **kwargs: Any) -> str:
    if not isinstance(fmt, str):
        raise TypeError("descriptor 'format' requires a 'str' object")
    return _vformat(fmt, args, kwargs, 2, _Auto())


def safe_format_map(fmt: str, mapping: Mapping[str, Any]) -> str:
    if not isinstance(fmt, str):
        raise TypeError("descriptor 'format_map' requires a 'str' object")
    return _vformat(fmt, _NoPositional(), mapping, 2, _Auto())


class _NoPositional(tuple):  # type: ignore[type-arg]
    def __getitem__(self, index: Any) -> Any:
        raise ValueError("Format string contains positional fields")


def bound(s: str, name: str) -> Any:
    if name == "format":

        def format(*args: Any, **kwargs: Any) -> str:
            return _vformat(s, args, kwargs, 2, _Auto())

        return format

    def format_map(mapping: Mapping[str, Any]) -> str:
        return safe_format_map(s, mapping)

    return format_map


def unbound(name: str) -> Any:
    return safe_format if name == "format" else safe_format_map


class Formatter:
    """``string.Formatter`` for untrusted code: the same methods, guarded
    ``get_field``.  Not a subclass of the real one, so that no ``super()``
    call can reach the unguarded ``get_field``."""

    def format(self, format_string: str, /, *args: Any, **kwargs: Any) -> str:
        return self.vformat(format_string, args, kwargs)

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        used: set = set()  # type: ignore[type-arg]
        result, _ = self._vformat(format_string, args, kwargs, used, 2)
        self.check_unused_args(used, args, kwargs)
        return result

    def _vformat(
        self,
        format_string: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        used: Any,
        depth: int,
        auto_arg_index: Any = 0,
    ) -> Tuple[str, Any]:
        if depth < 0:
            raise ValueError("Max string recursion exceeded")
        out: List[str] = []
        for literal, field_name, spec, conversion in self.parse(format_string):
            if literal:
                out.append(literal)
            if field_name is None:
                continue
            if field_name == "":
                if auto_arg_index is False:
                    raise ValueError(
                        "cannot switch from manual field specification to automatic field numbering"
                    )
                field_name = str(auto_arg_index)
                auto_arg_index += 1
            elif field_name.isdigit():
                if auto_arg_index:
                    raise ValueError(
                        "cannot switch from manual field specification to automatic field numbering"
                    )
                auto_arg_index = False
            obj, arg_used = self.get_field(field_name, args, kwargs)
            used.add(arg_used)
            obj = self.convert_field(obj, conversion)
            spec, auto_arg_index = self._vformat(
                spec or "", args, kwargs, used, depth - 1, auto_arg_index
            )
            out.append(self.format_field(obj, spec))
        return "".join(out), auto_arg_index

    def get_value(self, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            return args[key]
        return kwargs[key]

    def check_unused_args(
        self, used_args: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        pass

    def format_field(self, value: Any, format_spec: str) -> Any:
        return format(value, format_spec)

    def convert_field(self, value: Any, conversion: Any) -> Any:
        return _convert(value, conversion)

    def parse(self, format_string: str) -> Any:
        return _string.formatter_parser(format_string)

    def get_field(
        self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        return _lookup(obj, rest), first


__all__ = ["Formatter", "safe_format", "safe_format_map"]
