"""Imports for untrusted code: its own files, and views of allowed modules.

``Importer`` is the untrusted code's ``__import__``.  It resolves, in order:

1. modules already imported by the untrusted code (its registry, which the
   restricted ``sys.modules`` is);
2. the untrusted code's own source files, searched on the restricted
   ``sys.path`` (the script's directory by default).  They are read as source
   and compiled by the checker; bytecode (.pyc) is never loaded from them;
3. standard modules on the allow-list, imported by the trusted import system
   from the read-only standard library, and handed out as *views*.

A view is a new module object holding copies of the real module's public
names.  It leaves out underscore names, and modules the real one imported
(``json.sys``, ``shutil.os``, ``collections._sys``); it keeps its own allowed
submodules (``os.path``, ``collections.abc``) as views.  Changing a view
changes nothing for trusted code.  Some modules get a hand-made view
(``sys``, ``os``, ``types``, ``traceback``, ``builtins``) or have single
names replaced or dropped (``SPECIAL``).  Views are real module objects, so
``math.sqrt`` costs what it costs outside the sandbox.
"""

from __future__ import annotations

import os as _os
import sys

from . import guards, names
from .errors import SandboxAttributeError, SandboxImportError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Any, Callable, Dict, Iterable, List, Optional

if TYPE_CHECKING:
    from types import ModuleType  # noqa: TC003
else:
    ModuleType = type(sys)  # no 'import types': each import costs mediated system calls


def blocked_module(name: str, why: str = "") -> SandboxImportError:
    text = "sandbox policy blocks import of module %r" % name
    return SandboxImportError(text + (": " + why if why else ""), name=name)


# --- hand-made views ------------------------------------------------------------------

SYS_NAMES = frozenset(
    """
    argv byteorder builtin_module_names dont_write_bytecode exc_info exit executable
    flags float_info float_repr_style getdefaultencoding getfilesystemencodeerrors
    getfilesystemencoding getrecursionlimit getsizeof hash_info hexversion
    implementation int_info intern maxsize maxunicode platform prefix base_prefix
    exec_prefix base_exec_prefix thread_info version version_info api_version
    is_finalizing
    """.split()
)

OS_NAMES = frozenset(
    """
    DirEntry PathLike access altsep chdir chmod close closerange cpu_count curdir
    defpath device_encoding devnull dup dup2 error extsep fchmod fdatasync fdopen fsdecode
    fsencode fspath fstat fstatvfs fsync ftruncate fwalk get_blocking get_inheritable
    get_terminal_size getcwd getcwdb getegid geteuid getgid getgroups getloadavg getlogin
    getpid getppid getuid isatty linesep link listdir lseek lstat makedirs mkdir name
    open pardir pathsep pipe pipe2 pread pwrite read readlink remove removedirs rename
    renames replace rmdir scandir sep set_blocking set_inheritable stat stat_result
    statvfs statvfs_result strerror symlink sync terminal_size times times_result
    truncate umask uname uname_result unlink urandom utime walk write
    """.split()
)

TYPES_NAMES = frozenset(
    """
    SimpleNamespace MappingProxyType GeneratorType CoroutineType AsyncGeneratorType
    MethodType BuiltinFunctionType BuiltinMethodType ModuleType GenericAlias
    DynamicClassAttribute resolve_bases MethodWrapperType WrapperDescriptorType
    MethodDescriptorType ClassMethodDescriptorType GetSetDescriptorType
    MemberDescriptorType
    """.split()
)

TRACEBACK_NAMES = frozenset(
    """
    print_exc format_exc print_exception format_exception format_exception_only
    print_tb format_tb extract_tb format_list print_list print_stack format_stack
    extract_stack print_last
    """.split()
)

#: Names dropped from otherwise generic views, and why.
DROPPED: Dict[str, Dict[str, str]] = {
    "typing": {"get_type_hints": "evaluates annotation strings with the unchecked eval"},
    "collections": {"newdict": "from __pypy__: interpreter internals"},
    "functools": {
        "singledispatchmethod": "registers by annotations through typing.get_type_hints, "
        "which evaluates strings with the unchecked eval"
    },
    "urllib.request": {"install_opener": "a global opener trusted code would use too"},
    "copy": {"dispatch_table": "global reduce registry shared with trusted code"},
    "codecs": {
        "register": "global codec registry shared with trusted code",
        "register_error": "global error-handler registry shared with trusted code",
    },
    "threading": {
        "settrace": "trace functions receive frames",
        "setprofile": "profile functions receive frames",
    },
}


class SysView(ModuleType):
    """``sys`` for untrusted code.  ``stdin``/``stdout``/``stderr`` read and
    assign the real streams, so ``print`` and ``contextlib.redirect_stdout``
    agree with ``sys.stdout = buffer``."""

    @property
    def stdout(self) -> Any:
        return sys.stdout

    @stdout.setter
    def stdout(self, value: Any) -> None:
        sys.stdout = value

    @property
    def stderr(self) -> Any:
        return sys.stderr

    @stderr.setter
    def stderr(self, value: Any) -> None:
        sys.stderr = value

    @property
    def stdin(self) -> Any:
        return sys.stdin

    @stdin.setter
    def stdin(self, value: Any) -> None:
        sys.stdin = value


class Importer:
    """The untrusted code's ``__import__`` and module registry."""

    def __init__(
        self,
        allowed: Iterable[str],
        user_path: List[str],
        compile_user: Callable[[bytes, str], Any],
        builtins_module: Any,
        populate: Callable[[Dict[str, Any]], None],
    ) -> None:
        self.allowed = frozenset(n for n in allowed if n not in names.FORBIDDEN_MODULES)
        self.modules: Dict[str, Any] = {}  # name -> view or user module (sys.modules of the view)
        self.path = list(user_path)  # sys.path of the view: where user modules are searched
        self._compile_user = compile_user
        self._builtins = builtins_module
        self._populate = populate
        self._real_import = __import__
        self._random: Any = None

    # --- the import statement ------------------------------------------------------
    def __call__(
        self,
        name: Any,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if type(name) is not str:
            raise TypeError("module name must be str, not %s" % type(name).__name__)
        if type(level) is not int or level < 0:
            raise ValueError("level must be >= 0")
        if level > 0:
            caller = globals.get("__name__") if isinstance(globals, dict) else None
            name = self.absolute(name, caller, level)
        elif not name:
            raise ValueError("Empty module name")
        module = self.load(name)
        if fromlist:
            for item in fromlist:
                if type(item) is str and item != "*" and item not in module.__dict__:
                    try:  # noqa: SIM105 -- no contextlib in the guest
                        self.load(name + "." + item)
                    except ImportError:
                        pass  # the import statement reports the missing name
            return module
        return self.modules[name.partition(".")[0]]

    def absolute(self, name: str, caller: Any, level: int) -> str:
        """The absolute name of ``from <level dots><name> import ...`` in ``caller``."""
        if not level:
            if not name:
                raise ValueError("Empty module name")
            return name
        package = None
        module = self.modules.get(caller) if type(caller) is str else None
        if module is not None and guards.STATE.user_modules.get(module) is not None:
            package = module.__dict__.get("__package__")
        if not package or type(package) is not str:
            raise ImportError("attempted relative import with no known parent package")
        bits = package.rsplit(".", level - 1)
        if len(bits) < level:
            raise ImportError("attempted relative import beyond top-level package")
        base = bits[0]
        return base + "." + name if name else base

    def import_from(self, module: str, wanted: Any, level: int, caller: Any) -> Any:
        """``from module import a, b`` (the checker's ``G.fi``): the values, in order."""
        name = self.absolute(module, caller, level)
        mod = self.load(name)
        out = []
        # Whatever sys.modules holds (untrusted code may put any object
        # there), names are read through the guards: a raw dunder such as
        # type.__setattr__ would skip them.
        plain_module = type(mod) is ModuleType
        for item in wanted:
            if plain_module and item not in mod.__dict__:
                try:  # noqa: SIM105 -- no contextlib in the guest
                    self.load(name + "." + item)
                except ImportError:
                    pass  # reported below
            if plain_module and item in mod.__dict__ and not item.startswith("_"):
                out.append(mod.__dict__[item])
                continue
            try:
                out.append(guards.read(mod, item))
            except SandboxAttributeError as e:
                raise SandboxImportError(str(e), name=name) from None
            except AttributeError:
                raise ImportError(
                    "cannot import name %r from %r" % (item, name), name=name
                ) from None
        return tuple(out)

    # --- resolution ----------------------------------------------------------------
    def load(self, name: str) -> Any:
        found = self.modules.get(name)
        if found is not None:
            return found
        parent_name, _, child = name.rpartition(".")
        parent = self.load(parent_name) if parent_name else None
        user = self._find_user(name, parent)
        if user is not None:
            module = self._load_user(name, *user)
        else:
            module = self._load_allowed(name)
        settable = type(parent) is ModuleType and guards.STATE.protected_modules.get(parent) is None
        if settable and child not in parent.__dict__:
            parent.__dict__[child] = module
        return module

    def _find_user(self, name: str, parent: Any) -> Optional[Any]:
        if parent is not None:
            if guards.STATE.user_modules.get(parent) is None:
                return None
            dirs = list(parent.__dict__.get("__path__", ()))
        else:
            dirs = [d for d in self.path if type(d) is str]
        leaf = name.rpartition(".")[2]
        for d in dirs:
            base = _os.path.join(d, leaf)
            init = _os.path.join(base, "__init__.py")
            if _os.path.isfile(init):
                return (init, base)
            if _os.path.isfile(base + ".py"):
                return (base + ".py", None)
        return None

    def _load_user(self, name: str, path: str, package_dir: Optional[str]) -> Any:
        with open(path, "rb") as f:
            source = f.read()
        code = self._compile_user(source, path)
        module = ModuleType(name)
        d = module.__dict__
        d["__file__"] = path
        self._populate(d)
        if package_dir is not None:
            d["__path__"] = [package_dir]
            d["__package__"] = name
        else:
            d["__package__"] = name.rpartition(".")[0]
        guards.STATE.user_modules[module] = True
        self.modules[name] = module
        try:
            exec(code, d)  # noqa: S102 -- checked and rewritten by the checker
        except BaseException:
            self.modules.pop(name, None)
            raise
        return self.modules.get(name, module)

    def _load_allowed(self, name: str) -> Any:
        if name in names.FORBIDDEN_MODULES:
            raise blocked_module(name, names.FORBIDDEN_MODULES[name])
        if name not in self.allowed:
            why = names.UNSAFE_BY_DEFAULT.get(name, "not on the allow-list")
            raise blocked_module(name, why)
        builder = _BUILDERS.get(name)
        try:
            if builder is not None:
                view = builder(self, name)
            else:
                view = self.view(name, self._real(name))
        except BaseException:
            self.modules.pop(name, None)
            raise
        self.modules[name] = view
        return view

    def _real(self, name: str) -> Any:
        self._real_import(name)
        real = sys.modules[name]
        source = getattr(real, "__file__", None)
        native = source is None or not str(source).endswith(".py")
        if native and name not in names.AUDITED_NATIVE:
            raise blocked_module(name, "a builtin or extension module that is not audited")
        return real

    # --- views ---------------------------------------------------------------------
    def new_view(self, name: str, doc: Any, cls: Any = ModuleType) -> Any:
        view = cls(name)
        view.__dict__["__doc__"] = doc
        self.modules[name] = view  # before filling it: submodules refer back to it
        return view

    def refuse_missing(
        self, view: Any, real: Any, reasons: Dict[str, str], picked: bool = False
    ) -> None:
        """Names the real module has and the view leaves out raise an error
        that says so (a module-level ``__getattr__``, PEP 562)."""
        name = view.__name__
        lazy = real.__dict__.get("__getattr__") if picked is False else None

        def __getattr__(attr: str) -> Any:
            value = real.__dict__.get(attr)
            if isinstance(value, ModuleType) and attr not in reasons:
                # A submodule imported after the view was made (urllib.error,
                # imported by urllib.request): its view, if it is allowed.
                sub = getattr(value, "__name__", None)
                if sub == name + "." + attr and sub in self.allowed:
                    module = self.load(sub)
                    view.__dict__[attr] = module
                    return module
            if attr in real.__dict__ and not attr.startswith("__"):
                why = reasons.get(attr) or (
                    "a module it imported"
                    if isinstance(real.__dict__[attr], ModuleType)
                    else "not in the sandbox's view of the module"
                )
                raise guards.blocked("%s.%s: %s" % (name, attr, why))
            if lazy is not None and type(attr) is str and not attr.startswith("_"):
                # The real module makes some names on first use (PEP 562:
                # concurrent.futures.ThreadPoolExecutor); they follow the
                # view's rules once made.
                if attr in reasons:
                    raise guards.blocked("%s.%s: %s" % (name, attr, reasons[attr]))
                value = lazy(attr)
                if isinstance(value, ModuleType):
                    raise guards.blocked("%s.%s: a module it imported" % (name, attr))
                guards.allow_subclassing(value)
                view.__dict__[attr] = value
                return value
            raise AttributeError("module %r has no attribute %r" % (name, attr))

        view.__dict__["__getattr__"] = __getattr__

    def view(self, name: str, real: Any) -> Any:
        view = self.new_view(name, getattr(real, "__doc__", None))
        self.refuse_missing(view, real, DROPPED.get(name, {}))
        d = view.__dict__
        dropped = DROPPED.get(name, {})
        replaced = _REPLACED.get(name, {})
        for key, value in list(real.__dict__.items()):
            if key.startswith("_") or key in dropped:
                continue
            if isinstance(value, ModuleType):
                sub = getattr(value, "__name__", None)
                if sub == name + "." + key and sub in self.allowed:
                    d[key] = self.load(sub)
                continue
            if key in replaced:
                value = replaced[key](self, value)
            elif type(value) in (dict, list, set):
                # Module-level tables are shared with trusted code: the view
                # gets a copy (html.entities.html5, warnings.filters, ...).
                value = type(value)(value)
            d[key] = value
            guards.allow_subclassing(value)
        exported = real.__dict__.get("__all__")
        if isinstance(exported, (list, tuple)):
            d["__all__"] = [n for n in exported if type(n) is str and n in d]
        for extra in ("__version__", "__file__"):
            if extra in real.__dict__:
                d[extra] = real.__dict__[extra]
        if name == "argparse":
            guards.STATE.namespace_types[real.Namespace] = True  # vars(args) is plain data
        return view

    def picked(self, name: str, real: Any, keep: Iterable[str]) -> Any:
        view = self.new_view(name, getattr(real, "__doc__", None))
        self.refuse_missing(view, real, {}, picked=True)
        d = view.__dict__
        for key in keep:
            if key in real.__dict__:
                d[key] = real.__dict__[key]
                guards.allow_subclassing(d[key])
        return view


# --- builders of hand-made views ----------------------------------------------------


def _sys_view(imp: Importer, name: str) -> Any:
    view = imp.new_view("sys", sys.__doc__, SysView)
    imp.refuse_missing(view, sys, {}, picked=True)
    d = view.__dict__
    for key in SYS_NAMES:
        if key in sys.__dict__:
            d[key] = sys.__dict__[key]
    d["argv"] = list(sys.argv)
    # a copy: the import system reads sys.implementation.cache_tag
    d["implementation"] = type(sys.implementation)(**vars(sys.implementation))
    d["exc_info"] = _exc_info
    d["path"] = imp.path
    d["modules"] = imp.modules
    d["warnoptions"] = list(sys.warnoptions)
    return view


def _handled_by_untrusted_code(tb: Any) -> bool:
    # A handled exception's traceback starts at the frame that caught it.
    if tb is None:
        return True
    handler = tb.tb_frame.f_globals
    return handler.get("__builtins__") is guards.STATE.builtins_module


def _exc_info() -> Any:
    """``sys.exc_info()``, but not for an exception trusted code is handling
    (untrusted code it calls meanwhile -- a callback, a finalizer -- would
    see the trusted code's internal exception)."""
    info = sys.exc_info()
    if not _handled_by_untrusted_code(info[2]):
        return (None, None, None)
    return info


def _traceback_view(imp: Importer, name: str) -> Any:
    real = imp._real("traceback")
    view = imp.picked("traceback", real, TRACEBACK_NAMES)

    def format_exc(limit: Any = None, chain: bool = True) -> str:
        if not _handled_by_untrusted_code(sys.exc_info()[2]):
            return "NoneType: None\n"
        return real.format_exc(limit, chain)  # type: ignore[no-any-return]

    def print_exc(limit: Any = None, file: Any = None, chain: bool = True) -> None:
        if not _handled_by_untrusted_code(sys.exc_info()[2]):
            (file or sys.stderr).write("NoneType: None\n")
            return
        real.print_exc(limit, file, chain)

    view.__dict__["format_exc"] = format_exc
    view.__dict__["print_exc"] = print_exc
    return view


def _os_view(imp: Importer, name: str) -> Any:
    real = _os
    view = imp.picked("os", real, OS_NAMES)
    d = view.__dict__
    for key, value in real.__dict__.items():
        if key.isupper() and type(value) is int:
            d[key] = value
    environ = dict(real.environ)
    d["environ"] = environ

    def getenv(key: str, default: Any = None) -> Any:
        return environ.get(key, default)

    d["getenv"] = getenv
    offered = set(id(v) for v in d.values())
    for key in (
        "supports_dir_fd",
        "supports_fd",
        "supports_follow_symlinks",
        "supports_effective_ids",
    ):
        funcs = real.__dict__.get(key)
        if isinstance(funcs, (set, frozenset)):
            d[key] = frozenset(f for f in funcs if id(f) in offered)
    if "os.path" in imp.allowed:
        d["path"] = imp.load("os.path")
    return view


def _os_path_view(imp: Importer, name: str) -> Any:
    return imp.view("os.path", _os.path)


def _types_view(imp: Importer, name: str) -> Any:
    return imp.picked("types", imp._real("types"), TYPES_NAMES)


def _builtins_view(imp: Importer, name: str) -> Any:
    view = imp.new_view("builtins", "Built-in functions of the sandbox.")
    for key, value in imp._builtins.__dict__.items():
        if not key.startswith("_"):
            view.__dict__[key] = value
    return view


def _threading_view(imp: Importer, name: str) -> Any:
    return imp.view(name, imp._real(name))


def _random_view(imp: Importer, name: str) -> Any:
    # The module-level functions share one generator with trusted code; the
    # view binds them to a generator of its own, so seeding it changes
    # nothing for the prelude.
    real = imp._real("random")
    view = imp.view("random", real)
    own = real.Random()
    for key, value in list(view.__dict__.items()):
        bound_to = getattr(value, "__self__", None)
        if bound_to is getattr(real, "_inst", None) and bound_to is not None:
            view.__dict__[key] = getattr(own, key)
    return view


# --- replaced names ------------------------------------------------------------------


def _attrgetter(imp: Importer, real: Any) -> Any:
    def attrgetter(attr: str, *attrs: str) -> Any:
        def resolve(obj: Any, dotted: Any) -> Any:
            if type(dotted) is not str:
                raise TypeError("attribute name must be a string")
            for part in dotted.split("."):
                obj = guards.read(obj, part)
            return obj

        if not attrs:

            def get_one(obj: Any) -> Any:
                return resolve(obj, attr)

            return get_one
        every = (attr,) + attrs

        def get_all(obj: Any) -> Any:
            return tuple(resolve(obj, a) for a in every)

        return get_all

    return attrgetter


def _methodcaller(imp: Importer, real: Any) -> Any:
    def methodcaller(name: str, *args: Any, **kwargs: Any) -> Any:
        guards._checked_name(name)

        def call(obj: Any) -> Any:
            return guards.read(obj, name)(*args, **kwargs)

        return call

    return methodcaller


def _formatter(imp: Importer, real: Any) -> Any:
    from . import formatting

    return formatting.Formatter


def _update_wrapper(imp: Importer, real: Any) -> Any:
    assigned_default = real.__globals__["WRAPPER_ASSIGNMENTS"]
    updated_default = real.__globals__["WRAPPER_UPDATES"]

    def update_wrapper(
        wrapper: Any, wrapped: Any, assigned: Any = assigned_default, updated: Any = updated_default
    ) -> Any:
        if not guards.owns(wrapper):
            raise guards.blocked(
                "update_wrapper() on %s: it is not the untrusted code's own"
                % guards.describe(wrapper)
            )
        for attr in assigned:
            if attr not in assigned_default:
                guards.check_read(wrapped, attr)
                guards.check_write(wrapper, attr)
            try:
                value = getattr(wrapped, attr)
            except AttributeError:
                continue
            setattr(wrapper, attr, value)
        for attr in updated:
            if attr != "__dict__":
                raise guards.blocked("update_wrapper() of %r" % attr)
            try:
                extra = guards.namespace(wrapped)
            except AttributeError:
                extra = {}
            own = guards.namespace(wrapper)
            for key, value in dict(extra).items():
                if type(key) is str and not key.startswith(names.RESERVED_PREFIXES):
                    own[key] = value
        wrapper.__wrapped__ = wrapped
        return wrapper

    return update_wrapper


def _wraps(imp: Importer, real: Any) -> Any:
    update_wrapper = _update_wrapper(imp, real.__globals__["update_wrapper"])
    assigned_default = real.__globals__["WRAPPER_ASSIGNMENTS"]
    updated_default = real.__globals__["WRAPPER_UPDATES"]

    def wraps(
        wrapped: Any, assigned: Any = assigned_default, updated: Any = updated_default
    ) -> Any:
        def decorate(wrapper: Any) -> Any:
            return update_wrapper(wrapper, wrapped, assigned, updated)

        return decorate

    return wraps


def _field_names_ok(names_: Any) -> bool:
    import keyword

    return all(type(n) is str and n.isidentifier() and not keyword.iskeyword(n) for n in names_)


def _dataclass(imp: Importer, real: Any) -> Any:
    # dataclass() writes field names into source text it compiles with the
    # real compiler: every name must be an identifier, and the annotations
    # it iterates must be a copy untrusted code cannot change meanwhile
    # (its descriptors and metaclass run during the processing).
    guards.STATE.readonly_types[real.__globals__["Field"]] = True

    def dataclass(cls: Any = None, **kwargs: Any) -> Any:
        def wrap(c: Any) -> Any:
            if not guards.owns(c) or not issubclass(type(c), type):
                raise guards.blocked(
                    "dataclass() on %s: it is not the untrusted code's own" % guards.describe(c)
                )
            own = guards._type_dict.__get__(c, type)
            annotations = own.get("__annotations__", {})
            if type(annotations) is not dict:
                raise TypeError("sandbox policy: dataclass() needs __annotations__ to be a dict")
            snapshot = dict(annotations)
            if not _field_names_ok(snapshot):
                raise guards.blocked("dataclass() field names that are not identifiers")
            for base in guards._type_mro.__get__(c, type)[1:]:
                fields = guards._type_dict.__get__(base, type).get("__dataclass_fields__", {})
                if type(fields) is not dict or not _field_names_ok(
                    [getattr(f, "name", None) for f in fields.values()]
                ):
                    raise guards.blocked(
                        "dataclass() base %s with forged fields" % guards.describe(base)
                    )
            type.__setattr__(c, "__annotations__", snapshot)
            return real(c, **kwargs)

        if cls is None:
            return wrap
        return wrap(cls)

    return dataclass


def _owned_only(label: str) -> Callable[[Importer, Any], Any]:
    def make(imp: Importer, real: Any) -> Any:
        def guarded(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if not guards.owns(obj):
                raise guards.blocked(
                    "%s() of %s: it is not the untrusted code's own" % (label, guards.describe(obj))
                )
            return real(obj, *args, **kwargs)

        guarded.__name__ = label
        return guarded

    return make


def _make_dataclass(imp: Importer, real: Any) -> Any:
    def make_dataclass(cls_name: str, fields: Any, **kwargs: Any) -> Any:
        for f in fields:
            n = f if isinstance(f, str) else f[0]
            if type(n) is not str or n.startswith("_") or not _field_names_ok([n]):
                raise guards.blocked("dataclass field name %r" % (n,))
        return guards.mark_created(real(cls_name, fields, **kwargs))

    return make_dataclass


def _singledispatch(imp: Importer, real: Any) -> Any:
    # register(func) without a class reads the class from the annotations with
    # typing.get_type_hints, which evaluates strings with the unchecked eval.
    def singledispatch(func: Any) -> Any:
        dispatcher = real(func)
        real_register = dispatcher.register

        def register(cls: Any, func: Any = None) -> Any:
            if func is None and not isinstance(cls, type) and callable(cls):
                annotations = getattr(cls, "__annotations__", None)
                if isinstance(annotations, dict) and annotations:
                    first = next(iter(annotations.values()))
                    if isinstance(first, str):
                        raise TypeError(
                            "sandbox policy: register() does not evaluate the annotation "
                            "string %r; write @register(cls)" % first
                        )
                    return real_register(first, cls)
            return real_register(cls, func)

        dispatcher.register = register
        return dispatcher

    return singledispatch


def _redirect(stream: str) -> Callable[[Importer, Any], Any]:
    # The real classes take the stream's name from a class attribute a
    # subclass could change ("modules", "meta_path"): then they would set
    # that attribute of the real sys.  These name the stream in their code.
    def make(imp: Importer, real: Any) -> Any:
        if stream == "stdout":

            class redirect_stdout:
                """Send sys.stdout to another file for the duration of a with block."""

                def __init__(self, new_target: Any) -> None:
                    self._new_target = new_target
                    self._old_targets: List[Any] = []

                def __enter__(self) -> Any:
                    self._old_targets.append(sys.stdout)
                    sys.stdout = self._new_target
                    return self._new_target

                def __exit__(self, *exc: Any) -> None:
                    sys.stdout = self._old_targets.pop()

            return redirect_stdout

        class redirect_stderr:
            """Send sys.stderr to another file for the duration of a with block."""

            def __init__(self, new_target: Any) -> None:
                self._new_target = new_target
                self._old_targets: List[Any] = []

            def __enter__(self) -> Any:
                self._old_targets.append(sys.stderr)
                sys.stderr = self._new_target
                return self._new_target

            def __exit__(self, *exc: Any) -> None:
                sys.stderr = self._old_targets.pop()

        return redirect_stderr

    return make


def _typing_view(imp: Importer, name: str) -> Any:
    real = imp._real("typing")
    # Setting an attribute on a typing alias sets it on its origin class
    # (typing._BaseGenericAlias.__setattr__): List[int].x = f would change
    # a class trusted code uses.  Alias objects are read-only.
    for value in list(real.__dict__.values()):
        if isinstance(value, type) and issubclass(value, real._BaseGenericAlias):
            guards.STATE.readonly_types[value] = True
    return imp.view("typing", real)


def _namedtuple(imp: Importer, real: Any) -> Any:
    def namedtuple(*args: Any, **kwargs: Any) -> Any:
        return guards.mark_created(real(*args, **kwargs))

    return namedtuple


_REPLACED: Dict[str, Dict[str, Callable[[Importer, Any], Any]]] = {
    "operator": {"attrgetter": _attrgetter, "methodcaller": _methodcaller},
    "string": {"Formatter": _formatter},
    "functools": {
        "update_wrapper": _update_wrapper,
        "wraps": _wraps,
        "total_ordering": _owned_only("total_ordering"),
        "singledispatch": _singledispatch,
    },
    "typing": {
        "runtime_checkable": _owned_only("runtime_checkable"),
        "no_type_check": _owned_only("no_type_check"),
    },
    "dataclasses": {
        "dataclass": _dataclass,
        "asdict": _owned_only("asdict"),
        "astuple": _owned_only("astuple"),
        "make_dataclass": _make_dataclass,
    },
    "collections": {"namedtuple": _namedtuple},
    "contextlib": {"redirect_stdout": _redirect("stdout"), "redirect_stderr": _redirect("stderr")},
}


_BUILDERS: Dict[str, Callable[[Importer, str], Any]] = {
    "sys": _sys_view,
    "os": _os_view,
    "os.path": _os_path_view,
    "types": _types_view,
    "traceback": _traceback_view,
    "builtins": _builtins_view,
    "threading": _threading_view,
    "random": _random_view,
    "typing": _typing_view,
}
