"""Every allow- and deny-list of the restricted mode, in one place.

Pure data, importable by the guest (PyPy 3.9) and by the controller (the
policy schema validates module names against these lists).  Each exclusion
carries its reason; docs/restricted-mode.md explains the whole design.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Dict, FrozenSet

# --- attributes ---------------------------------------------------------------

#: Dunder attributes untrusted code may read.  Everything else of the form
#: ``__x__`` is refused at compile time and by the run-time guards: the
#: refused ones are how sandboxes are traditionally escaped (``__globals__``,
#: ``__closure__``, ``__code__``, ``__subclasses__``, ``__dict__``,
#: ``__self__``, ``__func__``, ``__wrapped__``, ``__traceback__``,
#: ``__context__``, ``__cause__``, ``__reduce__``, ``__reduce_ex__``,
#: ``__builtins__``, ``__loader__``, ``__spec__``, ...).
SAFE_DUNDERS: FrozenSet[str] = frozenset(
    """
    __name__ __qualname__ __doc__ __module__ __class__ __bases__ __base__ __mro__
    __new__ __init_subclass__ __slots__ __all__ __version__ __file__ __sizeof__ __dir__
    __repr__ __str__ __format__ __bytes__ __hash__ __bool__ __len__ __length_hint__
    __iter__ __next__ __reversed__ __contains__ __getitem__ __setitem__ __delitem__
    __missing__ __call__ __enter__ __exit__ __aenter__ __aexit__ __aiter__ __anext__
    __await__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __post_init__
    __add__ __sub__ __mul__ __matmul__ __truediv__ __floordiv__ __mod__ __divmod__
    __pow__ __lshift__ __rshift__ __and__ __xor__ __or__
    __radd__ __rsub__ __rmul__ __rmatmul__ __rtruediv__ __rfloordiv__ __rmod__
    __rdivmod__ __rpow__ __rlshift__ __rrshift__ __rand__ __rxor__ __ror__
    __iadd__ __isub__ __imul__ __imatmul__ __itruediv__ __ifloordiv__ __imod__
    __ipow__ __ilshift__ __irshift__ __iand__ __ixor__ __ior__
    __neg__ __pos__ __abs__ __invert__ __complex__ __int__ __float__ __index__
    __round__ __trunc__ __floor__ __ceil__
    """.split()
)

#: Dunders that are readable only through a guard: the result checks its
#: arguments on every call.  ``super().__setattr__(name, v)`` keeps working on
#: the untrusted code's own objects, while ``object.__getattribute__(api,
#: "_db")`` is refused; ``__init__`` cannot re-initialise objects that are not
#: the untrusted code's own (a constructor would become a mutator).
GUARDED_DUNDERS: FrozenSet[str] = frozenset(
    ("__init__", "__getattribute__", "__getattr__", "__setattr__", "__delattr__")
)

#: Ordinary-looking attribute names that lead to frames or code objects.
#: Refused whatever the object (compile time and run time).
DENIED_ATTRIBUTES: FrozenSet[str] = frozenset(
    """
    tb_frame f_back f_builtins f_code f_globals f_locals f_trace f_trace_lines
    f_trace_opcodes f_lasti gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await
    cr_origin ag_frame ag_code ag_await cell_contents get_stack
    co_argcount co_cellvars co_code co_consts co_filename co_firstlineno co_flags
    co_freevars co_kwonlyargcount co_lnotab co_name co_names co_nlocals
    co_posonlyargcount co_stacksize co_varnames co_linetable
    """.split()
)

#: Attribute names routed through the guarded ``str.format``.
FORMAT_ATTRIBUTES: FrozenSet[str] = frozenset(("format", "format_map"))

#: Underscore names that are documented public protocol of namedtuples and
#: enums; readable on those objects even when they are not the code's own.
NAMEDTUPLE_PROTOCOL: FrozenSet[str] = frozenset(
    ("_asdict", "_replace", "_fields", "_field_defaults", "_make")
)
ENUM_PROTOCOL: FrozenSet[str] = frozenset(
    ("_value_", "_name_", "_missing_", "_generate_next_value_", "_member_names_")
)

#: Prefix reserved for the sandbox's own names (the class token, the
#: ownership marker).  Untrusted source may not mention such names.
RESERVED_PREFIXES = ("__sr_", "_sr_")
#: The attribute that marks a class as the untrusted code's own.
OWNED_ATTRIBUTE = "__sr_owned__"
#: The class-body name the checker assigns a fresh token to (see guards).
TOKEN_NAME = "__sr_token__"

#: Global names untrusted source may not mention at all.
DENIED_NAMES: FrozenSet[str] = frozenset(
    ("__builtins__", "__build_class__", "__loader__", "__spec__", "__cached__", "__path__")
)

# --- builtins -----------------------------------------------------------------

#: Builtins untrusted code gets unchanged.
PLAIN_BUILTINS: FrozenSet[str] = frozenset(
    """
    abs all any ascii bin bool bytearray bytes callable chr classmethod complex dict
    divmod enumerate filter float format frozenset hash hex id int isinstance
    issubclass iter len list map max min next object oct ord pow print property
    range repr reversed round set slice sorted staticmethod str sum super tuple type
    zip open Ellipsis NotImplemented None True False
    """.split()
)

#: Builtins replaced by a restricted form (see ``environment``).
RESTRICTED_BUILTINS: Dict[str, str] = {
    "__import__": "the importer with the module allow-list",
    "__build_class__": "records classes as the untrusted code's own; refuses sealed bases",
    "getattr": "run-time attribute guard",
    "setattr": "run-time attribute guard",
    "delattr": "run-time attribute guard",
    "hasattr": "run-time attribute guard",
    "vars": "only the untrusted code's own namespaces",
    "dir": "without arguments, only the untrusted caller's scope",
    "globals": "only when called by untrusted code: its own globals",
    "locals": "only when called by untrusted code: its own locals",
    "exec": "source is checked and compiled like the script; code objects only from compile()",
    "eval": "as exec",
    "compile": "checks and rewrites the source; returns code exec/eval accept",
    "input": "present only when the run was given standard input",
}

#: Builtins untrusted code does not get, and why.
EXCLUDED_BUILTINS: Dict[str, str] = {
    "breakpoint": "starts a debugger: frames, arbitrary code",
    "help": "pydoc imports arbitrary modules and introspects everything",
    "memoryview": "historic source of memory-corruption primitives (released buffers); "
    "ordinary scripts do not need it",
    "copyright": "site.py helper, not part of the language",
    "credits": "site.py helper, not part of the language",
    "license": "site.py helper, not part of the language",
    "NoneType": "PyPy-only name, not in CPython's builtins",
    "sequenceiterator": "PyPy-only internal type",
    "__loader__": "import-system internals",
    "__spec__": "import-system internals",
    "__package__": "import-system internals",
    "__builtins__": "the trusted builtins",
}

# --- modules ------------------------------------------------------------------

#: Pure-Python standard modules importable by default (the policy adds and
#: removes).  ``sys``, ``os``, ``builtins``, ``types``, ``traceback`` and a few
#: others are always handed out as restricted views (see ``modules``).
DEFAULT_MODULES: FrozenSet[str] = frozenset(
    """
    __future__ abc ast base64 bisect builtins calendar codecs collections
    collections.abc colorsys contextlib copy csv dataclasses datetime decimal difflib
    enum fnmatch fractions functools glob graphlib gzip hashlib heapq hmac html
    html.entities html.parser http http.client io ipaddress json json.decoder
    json.encoder keyword numbers operator os os.path pathlib platform pprint queue
    random re reprlib secrets shlex shutil socket ssl statistics stat string struct
    sys tempfile textwrap traceback types typing urllib urllib.error urllib.parse
    urllib.request uuid warnings weakref zipfile
    math cmath array binascii zlib time itertools unicodedata select errno
    """.split()
)

#: Builtin and extension modules (no Python source) untrusted code may import
#: directly.  Audited: pure functions and data types, no interpreter access.
AUDITED_NATIVE: FrozenSet[str] = frozenset(
    "math cmath array binascii zlib time itertools unicodedata select errno".split()
)

#: Added to the allow-list when the policy allows threads.
THREAD_MODULES: FrozenSet[str] = frozenset(("threading", "concurrent", "concurrent.futures"))

#: Never importable, whatever the policy says, and why.
FORBIDDEN_MODULES: Dict[str, str] = {
    "posix": "the raw operating-system interface (os is given as a view)",
    "gc": "get_referrers/get_objects reach every object, frames included",
    "__pypy__": "PyPy internals: transparent proxies, raw interpreter hooks",
    "_continuation": "PyPy stacklets: frames of other code",
    "_rawffi": "raw memory access",
    "_cffi_backend": "raw memory access",
    "cffi": "raw memory access",
    "ctypes": "raw memory access",
    "_ctypes": "raw memory access",
    "marshal": "builds code objects from bytes",
    "_thread": "threads come only through threading, when the policy allows them",
    "_imp": "import-system internals",
    "_frozen_importlib": "import-system internals",
    "_frozen_importlib_external": "import-system internals",
    "importlib": "import-system internals: loads modules around the allow-list",
    "zipimport": "import-system internals",
    "sandbox_run": "the sandbox itself",
    "bootstrap": "the sandbox's bootstrap",
    "restricted": "the sandbox's restricted environment",
}

#: Unavailable by default, and why (the policy may add them; docs warn).
UNSAFE_BY_DEFAULT: Dict[str, str] = {
    "inspect": "frames, closures and globals of anything",
    "code": "runs unchecked source",
    "codeop": "compiles unchecked source",
    "pickle": "reduce paths call arbitrary callables; serialises private state",
    "copyreg": "global reduce registry shared with trusted code",
    "shelve": "pickle",
    "dis": "code objects and constants of trusted functions",
    "pdb": "frames, arbitrary code",
    "bdb": "frames",
    "timeit": "compiles and runs unchecked source",
    "doctest": "compiles and runs unchecked source",
    "runpy": "runs modules around the import checks",
    "pkgutil": "loads modules around the allow-list",
    "signal": "handlers receive the interrupted frame",
    "faulthandler": "dumps frames",
    "logging": "'{'-style formats traverse attributes with the unguarded str.format",
    "argparse": "its actions set attributes named by the caller on objects the caller "
    "chooses, with the unguarded setattr: a class of trusted code included",
    "asyncio": "threads (default executor), loop internals; add it when needed",
    "threading": "threads and settrace; see the policy's threads setting",
    "atexit": "runs code after the bootstrap",
    "locale": "process-wide state shared with trusted code",
    "tracemalloc": "frames",
    "unittest": "frames, imports by name",
    "sysconfig": "host build configuration",
    "site": "import-system set-up",
}
