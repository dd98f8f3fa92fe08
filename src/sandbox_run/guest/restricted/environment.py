"""Build the untrusted environment.

``Environment`` owns the restricted builtins, the guard carrier, the importer
and the code objects ``compile()`` made.  The bootstrap creates one, makes
the ``__main__`` module with ``new_module``, adds the grants, and runs the
script compiled by ``compile_source``.

PyPy looks builtins up in its one real builtins module whatever a module's
``__builtins__`` says, so every untrusted namespace holds all builtin names
itself: the restricted builtins, and for every other name of the real
builtins module a placeholder that raises NameError when used
(``populate``).  Untrusted code cannot delete those entries: ``del`` of a
builtin's name is refused by the checker, and ``globals()``, ``vars()`` and
a module's ``__dict__`` are read-only views.  The key ``__builtins__`` still
names the restricted builtins module: the guards recognise untrusted
functions by it.
"""

from __future__ import annotations

import builtins as _builtins
import sys

from . import checker, guards, modules, names
from .errors import SandboxNameError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Any, Dict, Iterable, List, Optional

ModuleType = type(sys)
_real_compile = compile
_real_exec = exec
_real_eval = eval
_real_dir = dir
_real_input = input
_PyCF_ONLY_AST = 1024
_MISSING = object()


class Environment:
    def __init__(
        self,
        allowed_modules: Iterable[str],
        user_path: List[str],
        *,
        stdin: bool,
        extra_builtins: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.carrier = guards.make_carrier()
        self.placeholder = checker.new_placeholder()
        self.builtins = ModuleType("builtins")
        guards.STATE.builtins_module = self.builtins
        guards.STATE.protected_modules[self.builtins] = True
        self.code_objects: Any = guards.identity_dict()  # CompiledCode -> its code object
        self.importer = modules.Importer(
            allowed_modules, user_path, self._compile_module, self.builtins, self.populate
        )
        self._fill_builtins(stdin, extra_builtins or {})
        self.template = self._template()
        guards.STATE.shadowed = frozenset(self.template)
        for t in _PLAIN_NAMESPACE_TYPES():
            guards.STATE.namespace_types[t] = True
        self._fill_carrier()
        guards.guard_copy()

    # --- builtins -----------------------------------------------------------------
    def _fill_builtins(self, stdin: bool, extra: Dict[str, Any]) -> None:
        d = self.builtins.__dict__
        real = _builtins.__dict__
        for name in names.PLAIN_BUILTINS:
            if name in real:
                d[name] = real[name]
        for name, value in real.items():
            if isinstance(value, type) and issubclass(value, BaseException):
                d[name] = value
        d["__debug__"] = real.get("__debug__", True)
        d["__name__"] = "builtins"
        d["__doc__"] = "Built-in functions of the sandbox's restricted mode."
        d["__import__"] = _importer_function(self.importer)
        d["getattr"] = guards.guarded_getattr
        d["setattr"] = guards.guarded_setattr
        d["delattr"] = guards.guarded_delattr
        d["hasattr"] = guards.guarded_hasattr
        # Plain functions, not bound methods: untrusted code must not reach
        # this object's other methods and attributes.
        for name in ("vars", "dir", "globals", "locals", "exec", "eval", "compile"):
            d[name] = _function_of(getattr(self, name), name)
        if stdin:
            d["input"] = _real_input
        for name, value in extra.items():
            d[name] = value
        for value in list(d.values()):
            if isinstance(value, type):
                guards.allow_subclassing(value)
        guards.allow_subclassing(type)

    def _template(self) -> Dict[str, Any]:
        template = {k: v for k, v in self.builtins.__dict__.items() if not k.startswith("__")}
        template["__import__"] = self.builtins.__dict__["__import__"]
        for name in list(_builtins.__dict__) + list(names.EXCLUDED_BUILTINS):
            if name not in template and not name.startswith("__"):
                template[name] = Excluded(name)
        return template

    def populate(self, namespace: Dict[str, Any]) -> None:
        """Give an untrusted namespace every builtin name (see the docstring)."""
        for key, value in self.template.items():
            if key not in namespace:
                namespace[key] = value
        dict.__setitem__(namespace, "__builtins__", self.builtins)

    # --- imports from compiled code --------------------------------------------
    def _fill_carrier(self) -> None:
        d = self.carrier.__dict__
        imp = self.importer
        d["i"] = lambda name, caller: imp(name, None, None, (), 0)
        d["m"] = lambda name, caller: imp.load(name)
        d["fi"] = imp.import_from
        d["star"] = self._import_star

    def _import_star(self, module: str, level: int, caller: Any) -> None:
        frame = sys._getframe(1)
        target = frame.f_globals
        if target.get("__builtins__") is not self.builtins:
            raise SandboxNameError("sandbox policy blocks import * outside untrusted code")
        mod = self.importer.load(self.importer.absolute(module, caller, level))
        exported = guards.read(mod, "__all__") if hasattr(mod, "__all__") else None
        if exported is None:
            names_ = mod.__dict__ if type(mod) is ModuleType else guards.namespace(mod)
            exported = [k for k in names_ if not k.startswith("_")]
        for key in exported:
            if type(key) is not str:
                raise TypeError("Item in __all__ must be str, not %s" % type(key).__name__)
            if key.startswith(names.RESERVED_PREFIXES) or key in names.DENIED_NAMES:
                raise SandboxNameError("sandbox policy blocks the name %r" % key)
            plain = type(mod) is ModuleType and not key.startswith("_")
            target[key] = mod.__dict__[key] if plain else guards.read(mod, key)

    # --- compiling -------------------------------------------------------------
    def compile_source(self, source: Any, filename: str, mode: str) -> Any:
        return checker.compile_untrusted(source, filename, mode, self.carrier, self.placeholder)

    def _compile_module(self, source: bytes, filename: str) -> Any:
        return self.compile_source(source, filename, "exec")

    def new_module(self, name: str, filename: Optional[str]) -> Any:
        module = ModuleType(name)
        d = module.__dict__
        self.populate(d)
        if filename is not None:
            d["__file__"] = filename
        guards.STATE.user_modules[module] = True
        self.importer.modules[name] = module
        return module

    # --- restricted builtins ------------------------------------------------------
    def _caller(self, what: str, depth: int = 3) -> Any:
        # depth: this method, the builtin's method, its plain-function
        # wrapper (_function_of), then the caller.
        frame = sys._getframe(depth)
        if frame.f_globals.get("__builtins__") is not self.builtins:
            raise SandboxNameError(
                "sandbox policy blocks %s() when it is not called by the untrusted code" % what
            )
        return frame

    @staticmethod
    def _read_only(frame: Any, mapping: Any) -> Any:
        # A module's namespace is read-only (the builtins' shadows must
        # stay); a function's locals are a snapshot anyway.
        if mapping is frame.f_globals:
            return guards._mappingproxy(mapping)
        return mapping

    def globals(self) -> Any:
        """The calling untrusted code's globals, read-only."""
        frame = self._caller("globals")
        return guards._mappingproxy(frame.f_globals)

    def locals(self) -> Any:
        """The calling untrusted code's locals (read-only at module level)."""
        frame = self._caller("locals")
        return self._read_only(frame, frame.f_locals)

    def vars(self, *args: Any) -> Any:
        if not args:
            frame = self._caller("vars")
            return self._read_only(frame, frame.f_locals)
        if len(args) > 1:
            raise TypeError("vars expected at most 1 argument, got %d" % len(args))
        return guards.namespace(args[0])

    def dir(self, *args: Any) -> List[str]:
        if not args:
            return sorted(self._caller("dir").f_locals)
        if len(args) > 1:
            raise TypeError("dir expected at most 1 argument, got %d" % len(args))
        result = _real_dir(args[0])
        return [n for n in result if n != names.OWNED_ATTRIBUTE]

    def compile(
        self,
        source: Any,
        filename: Any,
        mode: str,
        flags: int = 0,
        dont_inherit: bool = False,
        optimize: int = -1,
        _feature_version: int = -1,
    ) -> Any:
        if flags & _PyCF_ONLY_AST:
            return _real_compile(source, filename, mode, flags, True, optimize)
        if flags:
            raise ValueError("sandbox policy: compile() takes no flags but ast.PyCF_ONLY_AST")
        if isinstance(source, (bytes, bytearray)):
            source = bytes(source).decode("utf-8")
        if not isinstance(source, str):
            raise TypeError(
                "sandbox policy: compile() takes only source text, not %s" % type(source).__name__
            )
        if mode not in ("exec", "eval", "single"):
            raise ValueError("compile() mode must be 'exec', 'eval' or 'single'")
        code = self.compile_source(str(source), str(filename), mode)
        return self._wrap_code(code, mode)

    def _run(self, what: str, source: Any, globals: Any, locals: Any) -> Any:
        run = _real_exec if what == "exec" else _real_eval
        code = self._code(source, what)
        if globals is None:
            # The caller's globals: a module's namespace or one made below,
            # both out of untrusted code's reach except read-only.
            frame = self._caller(what, 4)
            if locals is None:
                locals = frame.f_locals
            return run(code, frame.f_globals, locals)
        if type(globals) is not dict:
            raise TypeError("%s() globals must be a dict" % what)
        for key in dict.keys(globals):
            if type(key) is not str:
                # a str subclass's __eq__ could hide a builtin's name from
                # one lookup and not the next
                raise TypeError("sandbox policy: %s() globals keys must be str" % what)
        # The code runs in a namespace of its own holding every builtin name;
        # the caller's dict is updated afterwards.  Functions the code defines
        # keep that namespace as their globals: the caller can change its
        # dict but not theirs (deleting "getattr" from it would let them
        # reach the real one).
        namespace = dict(self.template)
        namespace.update(globals)
        namespace["__builtins__"] = self.builtins
        try:
            return run(code, namespace, namespace if locals is None else locals)
        finally:
            for key in [k for k in globals if k not in namespace]:
                dict.__delitem__(globals, key)
            for key, value in namespace.items():
                if key == "__builtins__" or (self.template.get(key, _MISSING) is value):
                    continue
                dict.__setitem__(globals, key, value)

    def _code(self, source: Any, mode: str) -> Any:
        if isinstance(source, (str, bytes, bytearray)):
            if isinstance(source, (bytes, bytearray)):
                source = bytes(source).decode("utf-8")
            if mode == "eval":
                source = source.lstrip(" \t")
            return self.compile_source(source, "<string>", mode)
        code = self.code_objects.get(source)
        if code is None:
            raise TypeError(
                "sandbox policy: %s() runs only source text or code from compile()" % mode
            )
        return code

    def _wrap_code(self, code: Any, mode: str) -> Any:
        # Untrusted code never holds a code object: with one, the function
        # type (reachable as type(f)) would make a function whose globals
        # lack the builtins' shadows, which PyPy resolves to the real ones.
        handle = CompiledCode(code.co_filename, mode)
        self.code_objects[handle] = code
        return handle

    def exec(self, source: Any, globals: Any = None, locals: Any = None) -> None:
        self._run("exec", source, globals, locals)

    def eval(self, source: Any, globals: Any = None, locals: Any = None) -> Any:
        return self._run("eval", source, globals, locals)


class CompiledCode:
    """What ``compile()`` returns to untrusted code: a handle that ``exec``
    and ``eval`` accept, holding no code object."""

    __slots__ = ("filename", "mode")

    def __init__(self, filename: str, mode: str) -> None:
        self.filename = filename
        self.mode = mode

    def __repr__(self) -> str:
        return "<compiled %s code from %r>" % (self.mode, self.filename)


def _function_of(method: Any, name: str) -> Any:
    def builtin(*args: Any, **kwargs: Any) -> Any:
        return method(*args, **kwargs)

    builtin.__name__ = builtin.__qualname__ = name
    builtin.__doc__ = getattr(method, "__doc__", None)
    return builtin


def _importer_function(importer: Any) -> Any:
    def __import__(
        name: Any, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        return importer(name, globals, locals, fromlist, level)

    return __import__


class Excluded:
    """What a builtin untrusted code does not get is bound to, in its
    namespaces: using it raises NameError naming the builtin."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _refuse(self) -> SandboxNameError:
        why = names.EXCLUDED_BUILTINS.get(self._name, "not on the builtins allow-list")
        return SandboxNameError("sandbox policy blocks the builtin %r: %s" % (self._name, why))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse()

    def __getattr__(self, name: str) -> Any:
        raise self._refuse()

    def __repr__(self) -> str:
        return "<builtin %r blocked by the sandbox policy>" % self._name


def _PLAIN_NAMESPACE_TYPES() -> List[type]:
    """Types whose instance ``__dict__`` is plain data vars() may return."""
    out: List[type] = [type(sys.implementation)]
    argparse = sys.modules.get("argparse")
    if argparse is not None:
        out.append(argparse.Namespace)
    return out


__all__ = ["CompiledCode", "Environment", "Excluded"]
