"""The compile-time checker: parse, refuse, rewrite, compile.

Untrusted source is parsed with the builtin ``_ast`` (not ``ast``: that module
imports a dozen others, each a dozen mediated system calls).  The tree is
walked with an allow-list of node types; anything else is refused with the
line number.  Names and attributes are checked against ``names``; what cannot
be decided statically is rewritten into calls of the run-time guards:

- ``obj._x`` (private)            -> ``G.o(obj)._x``
- ``obj.__init__`` and the four attribute dunders -> ``G.s(obj, name)``
- ``obj.format`` / ``obj.format_map`` -> ``G.f(obj, name)``
- ``obj.x = v``, ``del obj.x``, ``obj.x += v`` (any store target)
                                   -> ``G.o(obj).x = v`` (same evaluation order)

``G.o(obj)`` is ``obj`` itself when it is an instance of the untrusted code's
own class (attribute access then runs as compiled, inline caches and all),
and otherwise a stand-in whose attribute hooks apply the run-time guards.
- ``import a.b``, ``from a import b``, ``from a import *`` -> ``G.i``,
  ``G.m``, ``G.fi``, ``G.star`` calls (the importer with the module allow-list)
- ``class C(B, metaclass=M)`` -> ``class C(G.b(B), metaclass=G.b(M))`` with
  ``G.c`` as its innermost decorator, and ``__sr_token__ = G.t()`` as the
  first statement of its body (see guards.finish_class)

PyPy ignores ``__builtins__`` in a module's globals (its interpreter is
built without ``honor__builtins__``): every frame looks up builtins, and the
``import`` and ``class`` statements their ``__import__`` and
``__build_class__``, in the one real builtins module.  So nothing implicit
may reach a builtin: imports and class statements are rewritten, and the
untrusted code's globals hold every builtin name itself (the restricted ones,
or a placeholder that refuses to work), which is why ``del`` of a builtin's
name is refused.

``G`` is not a name: the compiled code loads it as a constant.  The tree
refers to a placeholder string (random per process), which is replaced in
every code object's constants after compilation.  So no namespace (a class body's ``__prepare__``
mapping, ``exec``'s locals) can substitute the guards, and the JIT sees them
as constants.  Public attribute loads are left alone: they cost nothing.
"""

from __future__ import annotations

import _ast

from . import names
from .errors import SandboxAttributeError, SandboxNameError, SandboxSyntaxError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Any, List, Optional

#: Node types the checker knows (Python 3.9).  Anything else is refused.
ALLOWED_NODES = frozenset(
    """
    Module Interactive Expression
    FunctionDef AsyncFunctionDef ClassDef Return Delete Assign AugAssign AnnAssign
    For AsyncFor While If With AsyncWith Raise Try Assert Import ImportFrom Global
    Nonlocal Expr Pass Break Continue
    BoolOp NamedExpr BinOp UnaryOp Lambda IfExp Dict Set ListComp SetComp DictComp
    GeneratorExp Await Yield YieldFrom Compare Call FormattedValue JoinedStr Constant
    Attribute Subscript Starred Name List Tuple Slice
    Load Store Del And Or Add Sub Mult MatMult Div Mod Pow LShift RShift BitOr BitXor
    BitAnd FloorDiv Invert Not UAdd USub Eq NotEq Lt LtE Gt GtE Is IsNot In NotIn
    comprehension ExceptHandler arguments arg keyword alias withitem
    """.split()
)

#: Dunders untrusted code may assign on its own objects (checked at run time).
WRITABLE_DUNDERS = frozenset(("__doc__", "__name__", "__qualname__"))
#: Dunder names that may not be bound in any scope.
UNBINDABLE_DUNDERS = frozenset(("__class__", "__module__", "__name__", "__qualname__"))

_LOCATION = ("lineno", "col_offset", "end_lineno", "end_col_offset")


def _builtin_names() -> frozenset:  # type: ignore[type-arg]
    import builtins

    return frozenset(n for n in builtins.__dict__ if not n.startswith("__"))


#: Every name the real builtins module defines: untrusted globals shadow them
#: all, so untrusted code may not delete such a name.
BUILTIN_NAMES = _builtin_names()


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name[:2] == "__" and name[-2:] == "__"


def is_reserved(name: str) -> bool:
    return name.startswith(names.RESERVED_PREFIXES)


def mangle(name: str, classname: Optional[str]) -> str:
    """Private name mangling, as the compiler does it for ``self.__x``."""
    if classname is None or not name.startswith("__") or name.endswith("__") or "." in name:
        return name
    stripped = classname.lstrip("_")
    if not stripped:
        return name
    return "_%s%s" % (stripped, name)


class _Rewriter:
    def __init__(self, filename: str, placeholder: str) -> None:
        self.filename = filename
        self.placeholder = placeholder
        self.classes: List[Optional[str]] = []  # innermost class for mangling
        self.depth = 0  # function and class nesting: ``import *`` only at module level

    # --- errors ---------------------------------------------------------
    def _line(self, node: Any) -> int:
        return int(getattr(node, "lineno", 0) or 0)

    def _attr_error(self, node: Any, what: str) -> SandboxAttributeError:
        return SandboxAttributeError(
            "sandbox policy blocks %s (%s, line %d)" % (what, self.filename, self._line(node))
        )

    def _name_error(self, node: Any, name: str) -> SandboxNameError:
        return SandboxNameError(
            "sandbox policy blocks the name %r (%s, line %d)"
            % (name, self.filename, self._line(node))
        )

    # --- helpers --------------------------------------------------------
    def _at(self, new: Any, old: Any) -> Any:
        for a in _LOCATION:
            setattr(new, a, getattr(old, a, 0) or 0)
        return new

    def _carrier(self, method: str, old: Any) -> Any:
        const = self._at(_ast.Constant(self.placeholder, None), old)
        return self._at(_ast.Attribute(const, method, _ast.Load()), old)

    def _call(self, method: str, args: List[Any], old: Any) -> Any:
        return self._at(_ast.Call(self._carrier(method, old), args, []), old)

    def _const(self, value: Any, old: Any) -> Any:
        return self._at(_ast.Constant(value, None), old)

    def _check_binding(self, name: Optional[str], node: Any) -> None:
        if name is None:
            return
        if name in names.DENIED_NAMES or is_reserved(name) or name in UNBINDABLE_DUNDERS:
            raise self._name_error(node, name)

    def _check_use(self, name: str, node: Any) -> None:
        if name in names.DENIED_NAMES or is_reserved(name):
            raise self._name_error(node, name)

    # --- traversal ------------------------------------------------------
    def visit(self, node: Any) -> Any:
        kind = type(node).__name__
        if kind not in ALLOWED_NODES:
            raise SandboxSyntaxError(
                "sandbox policy does not allow %s here (%s, line %d)"
                % (kind, self.filename, self._line(node))
            )
        special = getattr(self, "visit_" + kind, None)
        if special is not None:
            return special(node)
        self.generic(node)
        return node

    def generic(self, node: Any) -> None:
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                value[:] = self.visit_list(value)
            elif isinstance(value, _ast.AST):
                setattr(node, field, self.visit(value))

    def visit_list(self, items: List[Any]) -> List[Any]:
        out: List[Any] = []
        for item in items:
            if isinstance(item, _ast.AST):
                new = self.visit(item)
                if isinstance(new, list):
                    out.extend(new)
                else:
                    out.append(new)
            else:
                out.append(item)
        return out

    # --- names ----------------------------------------------------------
    def visit_Name(self, node: Any) -> Any:
        if isinstance(node.ctx, _ast.Load):
            self._check_use(node.id, node)
        else:
            self._check_binding(node.id, node)
            if isinstance(node.ctx, _ast.Del) and node.id in BUILTIN_NAMES:
                raise SandboxNameError(
                    "sandbox policy blocks deleting the name %r: it shadows a builtin (%s, line %d)"
                    % (node.id, self.filename, self._line(node))
                )
        return node

    def visit_arg(self, node: Any) -> Any:
        self._check_binding(node.arg, node)
        self.generic(node)
        return node

    def _module_name(self, node: Any) -> Any:
        return self._at(_ast.Name("__name__", _ast.Load()), node)

    def _assign(self, target: str, value: Any, node: Any) -> Any:
        name = self._at(_ast.Name(target, _ast.Store()), node)
        return self._at(_ast.Assign([name], value, None), node)

    def _check_alias(self, alias: Any, node: Any) -> None:
        # alias nodes have no line numbers in 3.9: report the statement's
        if alias.asname is not None:
            self._check_binding(alias.asname, node)
        elif alias.name != "*":
            self._check_binding(alias.name.partition(".")[0], node)

    def visit_Import(self, node: Any) -> Any:
        out = []
        for alias in node.names:
            self._check_alias(alias, node)
            full = self._const(alias.name, node)
            if alias.asname is not None:
                call = self._call("m", [full, self._module_name(node)], node)
                out.append(self._assign(alias.asname, call, node))
            else:
                call = self._call("i", [full, self._module_name(node)], node)
                out.append(self._assign(alias.name.partition(".")[0], call, node))
        return out

    def visit_ImportFrom(self, node: Any) -> Any:
        module = self._const(node.module or "", node)
        level = self._const(node.level or 0, node)
        if len(node.names) == 1 and node.names[0].name == "*":
            if self.depth:
                raise SandboxSyntaxError(
                    "import * only allowed at module level (%s, line %d)"
                    % (self.filename, self._line(node))
                )
            call = self._call("star", [module, level, self._module_name(node)], node)
            return self._at(_ast.Expr(call), node)
        for alias in node.names:
            self._check_alias(alias, node)
            if alias.name in names.DENIED_NAMES or is_reserved(alias.name):
                raise self._name_error(node, alias.name)
        wanted = self._const(tuple(a.name for a in node.names), node)
        call = self._call("fi", [module, wanted, level, self._module_name(node)], node)
        targets = [self._at(_ast.Name(a.asname or a.name, _ast.Store()), node) for a in node.names]
        tup = self._at(_ast.Tuple(targets, _ast.Store()), node)
        return self._at(_ast.Assign([tup], call, None), node)

    def visit_Global(self, node: Any) -> Any:
        for n in node.names:
            self._check_binding(n, node)
        return node

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node: Any) -> Any:
        self._check_binding(node.name, node)
        self.generic(node)
        return node

    def visit_FunctionDef(self, node: Any) -> Any:
        self._check_binding(node.name, node)
        for field in ("decorator_list", "returns"):
            value = getattr(node, field)
            if isinstance(value, list):
                value[:] = [self.visit(v) for v in value]
            elif value is not None:
                setattr(node, field, self.visit(value))
        node.args = self.visit(node.args)
        # Mangling inside a method still uses the class name; a nested class
        # resets it.  Functions keep the enclosing class for mangling.
        self.depth += 1
        try:
            node.body = self.visit_list(node.body)
        finally:
            self.depth -= 1
        return node

    def visit_Lambda(self, node: Any) -> Any:
        self.depth += 1
        try:
            self.generic(node)
        finally:
            self.depth -= 1
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: Any) -> Any:
        self._check_binding(node.name, node)
        bases = []
        for b in node.bases:
            b = self.visit(b)
            if isinstance(b, _ast.Starred):
                b.value = self._call("bs", [b.value], b)
                bases.append(b)
            else:
                bases.append(self._call("b", [b], b))
        node.bases = bases
        node.keywords = [self.visit(k) for k in node.keywords]
        for k in node.keywords:
            if k.arg == "metaclass" or k.arg is None:
                k.value = self._call("b" if k.arg else "bk", [k.value], k.value)
        node.decorator_list = self.visit_list(node.decorator_list)
        node.decorator_list.append(self._carrier("c", node))
        self.classes.append(node.name)
        self.depth += 1
        try:
            body = self.visit_list(node.body)
        finally:
            self.classes.pop()
            self.depth -= 1
        token = self._at(
            _ast.Assign(
                [self._at(_ast.Name(names.TOKEN_NAME, _ast.Store()), node)],
                self._call("t", [], node),
                None,
            ),
            node,
        )
        docstring = (
            body
            and isinstance(body[0], _ast.Expr)
            and isinstance(body[0].value, _ast.Constant)
            and isinstance(body[0].value.value, str)
        )
        at = 1 if docstring else 0
        body.insert(at, token)
        node.body = body
        return node

    # --- attributes -----------------------------------------------------
    def visit_Attribute(self, node: Any) -> Any:
        node.value = self.visit(node.value)
        classname = self.classes[-1] if self.classes else None
        name = mangle(node.attr, classname)
        if is_reserved(name):
            raise self._attr_error(node, "attribute %r" % name)
        if name in names.DENIED_ATTRIBUTES:
            raise self._attr_error(node, "attribute %r (frames and code objects)" % name)
        if not isinstance(node.ctx, _ast.Load):
            if is_dunder(name) and name not in WRITABLE_DUNDERS:
                raise self._attr_error(node, "changing attribute %r" % name)
            # The store stays a store (the compiler mangles the name), on
            # G.o(obj): the object itself when it is the untrusted code's
            # own (the JIT keeps its inline caches), else a checking stand-in.
            node.value = self._call("o", [node.value], node)
            return node
        if is_dunder(name):
            if name in names.SAFE_DUNDERS:
                return node
            if name in names.GUARDED_DUNDERS or name == "__dict__":
                return self._call("s", [node.value, self._const(name, node)], node)
            raise self._attr_error(node, "attribute %r" % name)
        if name.startswith("_"):
            node.value = self._call("o", [node.value], node)
            return node
        if name in names.FORMAT_ATTRIBUTES:
            return self._call("f", [node.value, self._const(name, node)], node)
        return node


def new_placeholder() -> str:
    """The string constant compiled code carries in place of the guards.

    Random per process: untrusted source cannot contain it, nor build it by
    constant folding, so no code but the rewriter's refers to the guards.
    """
    import os

    return "sandbox-run guards " + os.urandom(16).hex()


def parse(source: Any, filename: str, mode: str, placeholder: str) -> Any:
    """Parse and rewrite; raises SyntaxError (or a Sandbox* error) with a line."""
    tree = compile(source, filename, mode, _ast.PyCF_ONLY_AST, dont_inherit=True)
    return _Rewriter(filename, placeholder).visit(tree)


def _replace_placeholder(code: Any, placeholder: str, carrier: object) -> Any:
    consts = code.co_consts
    changed = False
    out = []
    code_type = type(code)
    for c in consts:
        if type(c) is str and c == placeholder:
            c = carrier
            changed = True
        elif type(c) is code_type:
            new = _replace_placeholder(c, placeholder, carrier)
            if new is not c:
                c = new
                changed = True
        out.append(c)
    if not changed:
        return code
    return code.replace(co_consts=tuple(out))


def compile_untrusted(
    source: Any, filename: str, mode: str, carrier: object, placeholder: str
) -> Any:
    """Check, rewrite and compile untrusted source into a code object."""
    tree = parse(source, filename, mode, placeholder)
    code = compile(tree, filename, mode, dont_inherit=True)
    return _replace_placeholder(code, placeholder, carrier)
