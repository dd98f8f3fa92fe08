"""Run-time guards: what the rewritten code and the restricted builtins call.

Ownership is the central idea.  An object is the untrusted code's *own* when
it is an instance of a class the untrusted code created with a class
statement, such a class itself, a function it defined, or a module it
imported from its own files.  Its own objects have no secrets from it:
underscore attributes work on them as usual.  Everything else (granted
objects, the prelude's, the standard library's, the bootstrap's) keeps its
underscore attributes, and classes and modules that are not its own cannot be
changed.

A class is marked as owned by ``build_class`` with the attribute
``__sr_owned__ = (MARK, cls)``.  A class attribute lookup is folded by PyPy's
JIT, so the check costs nothing in hot loops (measured: an identity-keyed
dictionary costs 5-8x on attribute-heavy loops).  The tuple names the class
itself, so subclasses made with ``type()`` do not inherit ownership, and
``MARK`` is never reachable from untrusted code (the attribute is a refused
dunder everywhere, and ``vars()`` filters it), so the marker cannot be forged.
"""

from __future__ import annotations

import sys

from . import names
from .errors import SandboxAttributeError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Any, Callable, Dict

try:  # PyPy: a dictionary keyed by identity, never calling __eq__/__hash__
    from __pypy__ import identity_dict as identity_dict  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # CPython (host-side tests of the pure parts; never the guest)
    identity_dict = dict

_ModuleType = type(sys)
_FunctionType = type(lambda: None)
_type_dict = type.__dict__["__dict__"]  # reads a class's own namespace, no metaclass hooks
_type_mro = type.__dict__["__mro__"]
_type_setattr = type.__setattr__
_type_delattr = type.__delattr__
_real_getattr = getattr
_object_getattribute = object.__getattribute__
_object_setattr = object.__setattr__
_real_setattr = setattr
_real_delattr = delattr

MARK = object()
OWNED = names.OWNED_ATTRIBUTE


class _State:
    """Set once by ``environment``: identities the guards compare against."""

    builtins_module: Any = None  # the untrusted code's builtins module
    protected_modules: Any = identity_dict()  # modules nobody may change
    user_modules: Any = identity_dict()  # modules imported from the untrusted code's files
    subclassable: Any = identity_dict()  # builtin types, classes of allowed modules, grants
    tokens: Any = identity_dict()  # class tokens issued and not yet consumed
    namespace_types: Any = identity_dict()  # safe types whose __dict__ vars() may return
    shadowed: Any = frozenset()  # builtin names every untrusted namespace must keep
    readonly_types: Any = identity_dict()  # standard classes whose instances are read-only


STATE = _State()


def blocked(what: str) -> SandboxAttributeError:
    return SandboxAttributeError("sandbox policy blocks " + what)


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return "class %s" % _real_getattr(obj, "__qualname__", "?")
    if issubclass(type(obj), _ModuleType):
        return "module %s" % obj.__name__
    return "%s object" % type(obj).__name__


# --- ownership -----------------------------------------------------------------


def is_owned_class(cls: Any) -> bool:
    m = _real_getattr(cls, OWNED, None)
    if type(m) is tuple and len(m) == 2 and m[0] is MARK and m[1] is cls:
        return True
    return _under_construction(cls)


def _under_construction(cls: Any) -> bool:
    """A class that an untrusted class statement is creating right now (its
    ``__init_subclass__``, ``__set_name__`` and metaclass run before the
    statement's ``G.c`` marks it): it holds an issued token, and its MRO is
    already one the untrusted code may extend."""
    if not issubclass(type(cls), type):
        return False
    token = _type_dict.__get__(cls, type).get(names.TOKEN_NAME)
    if token is None or STATE.tokens.get(token) is None:
        return False
    for c in _type_mro.__get__(cls, type)[1:]:
        if STATE.subclassable.get(c) is None and not is_owned_class(c):
            return False
    return True


def mark_owned(cls: type) -> None:
    _type_setattr(cls, OWNED, (MARK, cls))


def is_untrusted_function(obj: Any) -> bool:
    return (
        type(obj) is _FunctionType
        and obj.__globals__.get("__builtins__") is STATE.builtins_module
        and STATE.builtins_module is not None
    )


def owns(obj: Any) -> bool:
    """Is ``obj`` the untrusted code's own object?"""
    t = type(obj)
    if issubclass(t, type):
        return is_owned_class(obj)
    if is_owned_class(t):
        return True
    if t is _FunctionType:
        return is_untrusted_function(obj)
    if t is super:
        target = obj.__self__
        return target is not None and owns(target)
    if issubclass(t, _ModuleType):
        return STATE.user_modules.get(obj) is not None
    return False


def _protocol_name(obj: Any, name: str) -> bool:
    """Documented underscore names of namedtuples and enums."""
    if name in names.NAMEDTUPLE_PROTOCOL:
        t = obj if issubclass(type(obj), type) else type(obj)
        return issubclass(t, tuple)
    if name in names.ENUM_PROTOCOL:
        enum = sys.modules.get("enum")
        if enum is None:
            return False
        return isinstance(obj, (enum.Enum, enum.EnumMeta))
    return False


# --- names -----------------------------------------------------------------------


def _checked_name(name: Any) -> str:
    if type(name) is not str:
        if isinstance(name, str):
            raise TypeError(
                "sandbox policy: attribute names must be plain str, not %s" % type(name).__name__
            )
        raise TypeError("attribute name must be string, not '%s'" % type(name).__name__)
    if not name.isascii():
        import unicodedata

        normal = unicodedata.normalize("NFKC", name)
        if normal != name:
            # Source identifiers are normalised, attribute strings are not:
            # a name that only normalises to a refused or private one is
            # refused (no source can define it anyway).
            _check_static(normal)
            if normal[:1] == "_":
                raise blocked("attribute %r (its normal form %r is private)" % (name, normal))
    return name


def _check_static(name: str) -> None:
    """Refusals that do not depend on the object."""
    if name.startswith(names.RESERVED_PREFIXES):
        raise blocked("attribute %r" % name)
    if name in names.DENIED_ATTRIBUTES:
        raise blocked("attribute %r (frames and code objects)" % name)
    if _is_dunder(name) and not _readable_dunder(name):
        raise blocked("attribute %r" % name)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name[:2] == "__" and name[-2:] == "__"


def _readable_dunder(name: str) -> bool:
    return name in names.SAFE_DUNDERS or name in names.GUARDED_DUNDERS or name == "__dict__"


def check_read(obj: Any, attr: Any) -> str:
    """Raise unless untrusted code may read ``obj.<attr>``; returns the name."""
    name = _checked_name(attr)
    _check_static(name)
    private = name[:1] == "_" and not _is_dunder(name)
    if private and not owns(obj) and not _protocol_name(obj, name):
        raise blocked("private attribute %r of %s" % (name, _describe(obj)))
    return name


def check_write(obj: Any, attr: Any, deleting: bool = False) -> str:
    """Raise unless untrusted code may set or delete ``obj.<attr>``."""
    name = _checked_name(attr)
    if name.startswith(names.RESERVED_PREFIXES):
        raise blocked("changing attribute %r" % name)
    is_dunder = len(name) > 4 and name[:2] == "__" and name[-2:] == "__"
    if is_dunder:
        if name not in ("__doc__", "__name__", "__qualname__") or not owns(obj):
            raise blocked("changing attribute %r of %s" % (name, _describe(obj)))
        return name
    t = type(obj)
    if issubclass(t, type):
        if not is_owned_class(obj):
            raise blocked(
                "changing attribute %r of %s: it is not the untrusted code's own"
                % (name, _describe(obj))
            )
        return name
    if name[:1] == "_":
        if not owns(obj):
            raise blocked("private attribute %r of %s" % (name, _describe(obj)))
        return name
    if is_owned_class(t):
        return name
    if issubclass(t, _ModuleType):
        if STATE.protected_modules.get(obj) is not None:
            raise blocked("changing attribute %r of %s" % (name, _describe(obj)))
        if deleting and STATE.user_modules.get(obj) is not None and name in STATE.shadowed:
            raise blocked("deleting %r from %s: it shadows a builtin" % (name, _describe(obj)))
        return name
    if t is _FunctionType:
        if not is_untrusted_function(obj):
            raise blocked("changing attribute %r of %s" % (name, _describe(obj)))
        return name
    if STATE.namespace_types.get(t) is not None:
        return name  # types.SimpleNamespace: plain data, whoever made it
    if STATE.subclassable.get(t) is None or STATE.readonly_types.get(t) is not None:
        raise blocked(
            "changing attribute %r of %s: it is not the untrusted code's own"
            % (name, _describe(obj))
        )
    return name


# --- the guarded operations ---------------------------------------------------------


def guarded_getattr(obj: Any, name: Any, *default: Any) -> Any:
    """``getattr`` for untrusted code."""
    if len(default) > 1:
        raise TypeError("getattr expected at most 3 arguments, got %d" % (2 + len(default)))
    try:
        return read(obj, name)
    except AttributeError:
        if default:
            return default[0]
        raise


def read(obj: Any, name: Any) -> Any:
    name = check_read(obj, name)
    if name in names.GUARDED_DUNDERS or name == "__dict__":
        return special(obj, name)
    if name in names.FORMAT_ATTRIBUTES:
        return format_attribute(obj, name)
    return _real_getattr(obj, name)


def guarded_hasattr(obj: Any, name: Any) -> bool:
    try:
        read(obj, name)
    except AttributeError:
        return False
    return True


def guarded_setattr(obj: Any, name: Any, value: Any) -> None:
    _real_setattr(obj, check_write(obj, name), value)


def guarded_delattr(obj: Any, name: Any) -> None:
    _real_delattr(obj, check_write(obj, name, deleting=True))


class Checked:
    """Stand-in for an object that is not the untrusted code's own, as the
    target of a rewritten ``obj._x`` read or ``obj.x = v`` store."""

    __slots__ = ("_sr_target",)

    def __init__(self, obj: Any) -> None:
        _object_setattr(self, "_sr_target", obj)

    def __getattribute__(self, name: str) -> Any:
        return read(_object_getattribute(self, "_sr_target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        obj = _object_getattribute(self, "_sr_target")
        _real_setattr(obj, check_write(obj, name), value)

    def __delattr__(self, name: str) -> None:
        obj = _object_getattribute(self, "_sr_target")
        _real_delattr(obj, check_write(obj, name, deleting=True))


def target(obj: Any) -> Any:
    """``G.o``: the object itself if it is the untrusted code's own instance."""
    t = type(obj)
    if is_owned_class(t) and not issubclass(t, type):
        return obj
    return Checked(obj)


# --- guarded dunders ----------------------------------------------------------------


def namespace(obj: Any) -> Any:
    """``vars(obj)`` / ``obj.__dict__`` for untrusted code."""
    t = type(obj)
    if issubclass(t, type):
        if not is_owned_class(obj):
            raise blocked(
                "the namespace of %s: it is not the untrusted code's own" % _describe(obj)
            )
        ns = dict(_type_dict.__get__(obj, type))
        ns.pop(OWNED, None)
        return _mappingproxy(ns)
    if issubclass(t, _ModuleType):
        if STATE.user_modules.get(obj) is not None:
            return _mappingproxy(obj.__dict__)  # read-only: builtins' shadows stay
        raise blocked(
            "the namespace of %s: module views hand out names, not namespaces" % _describe(obj)
        )
    if owns(obj) or STATE.namespace_types.get(t) is not None:
        return obj.__dict__
    raise blocked("the namespace of %s: it is not the untrusted code's own" % _describe(obj))


def _mappingproxy(d: Dict[str, Any]) -> Any:
    return type(type.__dict__)(d)


def special(obj: Any, name: str) -> Any:
    """``obj.__init__`` and the attribute dunders: checked on every call."""
    if name == "__dict__":
        return namespace(obj)
    real = _real_getattr(obj, name)
    t = type(obj)
    if issubclass(t, type):
        return _unbound(real, name)
    target = obj.__self__ if t is super else obj
    return _bound(real, name, target)


def _init_allowed(target: Any) -> bool:
    return issubclass(type(target), type) or owns(target)


def _bound(real: Callable[..., Any], name: str, target: Any) -> Callable[..., Any]:
    if name == "__init__":
        if not _init_allowed(target):
            raise blocked("__init__ of %s: it is not the untrusted code's own" % _describe(target))
        return real
    if name in ("__getattribute__", "__getattr__"):

        def get(attr: Any, *rest: Any) -> Any:
            attr = check_read(target, attr)
            if attr in names.GUARDED_DUNDERS or attr == "__dict__":
                return special(target, attr)  # not the raw one, by any route
            return real(attr, *rest)

        get.__name__ = name
        return get

    def change(attr: Any, *rest: Any) -> Any:
        return real(check_write(target, attr, name == "__delattr__"), *rest)

    change.__name__ = name
    return change


def _unbound(real: Callable[..., Any], name: str) -> Callable[..., Any]:
    if name == "__init__":

        def init(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _init_allowed(self):
                raise blocked(
                    "__init__ of %s: it is not the untrusted code's own" % _describe(self)
                )
            return real(self, *args, **kwargs)

        return init
    if name in ("__getattribute__", "__getattr__"):

        def get(target: Any, attr: Any, *rest: Any) -> Any:
            attr = check_read(target, attr)
            if attr in names.GUARDED_DUNDERS or attr == "__dict__":
                return special(target, attr)
            return real(target, attr, *rest)

        get.__name__ = name
        return get

    def change(target: Any, attr: Any, *rest: Any) -> Any:
        return real(target, check_write(target, attr, name == "__delattr__"), *rest)

    change.__name__ = name
    return change


def format_attribute(obj: Any, name: str) -> Any:
    """``s.format`` / ``str.format``: the guarded formatter for strings."""
    from . import formatting

    t = type(obj)
    if issubclass(t, str) and _real_getattr(t, name) is _real_getattr(str, name):
        return formatting.bound(obj, name)
    if obj is str:
        return formatting.unbound(name)
    if (
        issubclass(t, type)
        and issubclass(obj, str)
        and _real_getattr(obj, name) is _real_getattr(str, name)
    ):
        return formatting.unbound(name)
    return _real_getattr(obj, name)


# --- classes -----------------------------------------------------------------------


def class_token() -> object:
    """A fresh token for one class body (the checker's ``G.t``)."""
    token = object()
    STATE.tokens[token] = True
    return token


def allow_subclassing(cls: Any) -> None:
    """Let untrusted code subclass ``cls`` (and so everything in its MRO)."""
    if not isinstance(cls, type):
        return
    for c in _type_mro.__get__(cls, type):
        STATE.subclassable[c] = True


def check_bases(cls: Any) -> None:
    """Refuse a class whose MRO holds a class untrusted code may not extend."""
    for c in _type_mro.__get__(cls, type)[1:]:
        if STATE.subclassable.get(c) is None and not is_owned_class(c):
            raise TypeError(
                "sandbox policy blocks subclassing %s.%s: only the untrusted code's own "
                "classes, builtin types, classes of allowed modules and granted classes "
                "can be extended" % (c.__module__, c.__qualname__)
            )


def _check_base(base: Any) -> None:
    if not issubclass(type(base), type):
        # Not a class: its __mro_entries__ picks the bases (PEP 560).  Trusted
        # ones (typing's Generic[T], NamedTuple) are fine; the untrusted code's
        # own could name a sealed class whose __init_subclass__ would run
        # before the class statement's check.
        if owns(base) or is_owned_class(type(base)):
            raise TypeError(
                "sandbox policy blocks class bases that are not classes "
                "unless they come from an allowed module"
            )
        return
    if STATE.subclassable.get(base) is None:
        if not is_owned_class(base):
            raise TypeError(
                "sandbox policy blocks subclassing %s.%s: only the untrusted code's own "
                "classes, builtin types, classes of allowed modules and granted classes "
                "can be extended" % (base.__module__, base.__qualname__)
            )
        check_bases(base)


def check_base(base: Any) -> Any:
    """A class statement's base or metaclass (the checker's ``G.b``)."""
    _check_base(base)
    return base


def check_base_list(bases: Any) -> Any:
    """``class C(*bases)`` (the checker's ``G.bs``)."""
    out = list(bases)
    for b in out:
        _check_base(b)
    return out


def check_class_keywords(kwargs: Any) -> Any:
    """``class C(**kw)`` (the checker's ``G.bk``): its metaclass is a base too."""
    out = dict(kwargs)
    if "metaclass" in out:
        _check_base(out["metaclass"])
    return out


def finish_class(cls: Any) -> Any:
    """The innermost decorator of every class statement (the checker's ``G.c``).

    The class is the untrusted code's own if it carries, in its own namespace,
    a token issued for a class body and not used before: then it was made by
    this class statement, not fetched from elsewhere by a metaclass.
    """
    if issubclass(type(cls), type):
        own = _type_dict.__get__(cls, type)
        token = own.get(names.TOKEN_NAME)
        if token is not None and STATE.tokens.get(token) is not None:
            del STATE.tokens[token]
            try:  # noqa: SIM105 -- no contextlib: each import costs the guest system calls
                _type_delattr(cls, names.TOKEN_NAME)
            except (AttributeError, TypeError):
                pass
            check_bases(cls)
            mark_owned(cls)
    return cls


def mark_created(cls: Any) -> Any:
    """Classes made for the untrusted code by allowed helpers (namedtuple,
    make_dataclass) become its own, if their bases allow it."""
    if issubclass(type(cls), type):
        check_bases(cls)
        mark_owned(cls)
    return cls


# --- copy's reduce protocol ---------------------------------------------------------------


def guard_copy() -> None:
    """Make ``copy``'s reduce protocol safe to use on untrusted objects.

    ``copy.copy``/``deepcopy`` rebuild an object from what its
    ``__reduce_ex__`` returns: ``y = func(*args)``, then set ``state`` into
    ``y`` (``__dict__.update``, ``setattr``), append and set items.  An
    untrusted ``__reduce__`` chooses ``func``; if it returns an existing
    object -- a class of trusted code, say -- trusted code would set
    attributes named by untrusted code on it.  Trusted code calls copy on
    untrusted objects (dataclasses.asdict, UserDict.copy), so the check is in
    the real module: when ``func`` is not a class or one of copyreg's object
    makers, state goes only into the untrusted code's own objects.  Trusted
    types reduce to their class, so they are unaffected.

    ``copy`` and its imports cost the guest's start-up about 60 mediated
    calls, so if nothing imported it yet, the patch waits for the first
    import (an import-system hook that removes itself).
    """
    module = sys.modules.get("copy")
    if module is None:
        for finder in sys.meta_path:
            if type(finder) is _CopyImportHook:
                return
        sys.meta_path.insert(0, _CopyImportHook())
        return
    _patch_copy(module)


class _CopyImportHook:
    """Patches ``copy`` right after the import system executed it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "copy":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            _patch_copy(module)

        loader.exec_module = exec_module
        return spec


def _patch_copy(copy: Any) -> None:
    import copyreg

    real = copy._reconstruct
    if getattr(real, "__sr_guarded__", False):
        return
    makers = (copyreg.__newobj__, copyreg.__newobj_ex__, copyreg._reconstructor)  # type: ignore[attr-defined]

    def _reconstruct(
        x: Any,
        memo: Any,
        func: Any,
        args: Any,
        state: Any = None,
        listiter: Any = None,
        dictiter: Any = None,
        deepcopy: Any = copy.deepcopy,
    ) -> Any:
        arbitrary = not isinstance(func, type) and not any(func is m for m in makers)
        if arbitrary and (state is not None or listiter is not None or dictiter is not None):

            def build(*a: Any) -> Any:
                y = func(*a)
                if issubclass(type(y), type) or not owns(y):
                    raise TypeError(
                        "sandbox policy: a __reduce__ result sets state only into the "
                        "untrusted code's own objects, not into %s" % _describe(y)
                    )
                return y

            return real(x, memo, build, args, state, listiter, dictiter, deepcopy)
        return real(x, memo, func, args, state, listiter, dictiter, deepcopy)

    _reconstruct.__sr_guarded__ = True  # type: ignore[attr-defined]
    copy._reconstruct = _reconstruct


# --- the carrier ---------------------------------------------------------------------


def make_carrier() -> Any:
    """The object compiled code reaches the guards through (a constant)."""
    carrier = _ModuleType("guards")
    d = carrier.__dict__
    d["o"] = target
    d["s"] = special
    d["f"] = format_attribute
    d["t"] = class_token
    d["b"] = check_base
    d["bs"] = check_base_list
    d["bk"] = check_class_keywords
    d["c"] = finish_class
    STATE.protected_modules[carrier] = True
    return carrier


def describe(obj: Any) -> str:
    return _describe(obj)
