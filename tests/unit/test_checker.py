"""The compile-time checker, as a pure function (no guest process): what it
refuses, with which line, and what it rewrites.  The escape corpus in
tests/guest runs the same checker inside PyPy."""

from __future__ import annotations

import ast

import pytest

from sandbox_run.guest.restricted import checker
from sandbox_run.guest.restricted.errors import (
    SandboxAttributeError,
    SandboxNameError,
    SandboxSyntaxError,
)

PLACEHOLDER = "sandbox-run guards test"


def rewrite(source: str) -> str:
    return ast.unparse(checker.parse(source, "t.py", "exec", PLACEHOLDER))


def refuse(source: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        checker.parse(source, "t.py", "exec", PLACEHOLDER)
    assert str(info.value) == message


def test_unknown_node_types_are_refused_with_their_line() -> None:
    # match is Python 3.10 syntax: the checker's allow-list does not know it
    refuse(
        "x = 1\nmatch x:\n    case 1:\n        pass\n",
        SandboxSyntaxError,
        "sandbox policy does not allow Match here (t.py, line 2)",
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("f.__globals__", "sandbox policy blocks attribute '__globals__' (t.py, line 1)"),
        ("\n\nf.__code__.co_consts", "sandbox policy blocks attribute '__code__' (t.py, line 3)"),
        (
            "g.gi_frame",
            "sandbox policy blocks attribute 'gi_frame' (frames and code objects) (t.py, line 1)",
        ),
        (
            "x.__class__ = int",
            "sandbox policy blocks changing attribute '__class__' (t.py, line 1)",
        ),
        ("del x.__dict__", "sandbox policy blocks changing attribute '__dict__' (t.py, line 1)"),
        ("x._sr_owned", "sandbox policy blocks attribute '_sr_owned' (t.py, line 1)"),
        ("f'{x.__self__}'", "sandbox policy blocks attribute '__self__' (t.py, line 1)"),
    ],
)
def test_attributes_refused_at_compile_time(source: str, message: str) -> None:
    refuse(source, SandboxAttributeError, message)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__builtins__", "sandbox policy blocks the name '__builtins__' (t.py, line 1)"),
        (
            "def f(__sr_token__): pass",
            "sandbox policy blocks the name '__sr_token__' (t.py, line 1)",
        ),
        ("import os as __loader__", "sandbox policy blocks the name '__loader__' (t.py, line 1)"),
        (
            "from x import __builtins__",
            "sandbox policy blocks the name '__builtins__' (t.py, line 1)",
        ),
        (
            "class A:\n    __class__ = int",
            "sandbox policy blocks the name '__class__' (t.py, line 2)",
        ),
        ("__name__ = 'json'", "sandbox policy blocks the name '__name__' (t.py, line 1)"),
        (
            "del getattr",
            "sandbox policy blocks deleting the name 'getattr': it shadows a builtin "
            "(t.py, line 1)",
        ),
    ],
)
def test_names_refused_at_compile_time(source: str, message: str) -> None:
    refuse(source, SandboxNameError, message)


def test_star_import_outside_module_level() -> None:
    refuse(
        "def f():\n    from json import *\n",
        SandboxSyntaxError,
        "import * only allowed at module level (t.py, line 2)",
    )


def test_public_reads_and_safe_dunders_are_left_alone() -> None:
    assert rewrite("a.b.c(x.__name__, type(y).__qualname__)") == (
        "a.b.c(x.__name__, type(y).__qualname__)"
    )


def test_private_reads_go_through_the_target_guard() -> None:
    g = repr(PLACEHOLDER)
    assert rewrite("obj._x") == f"{g}.o(obj)._x"
    # the compiler still mangles: the guard sees _C__x
    assert rewrite("class C:\n    def f(self):\n        return self.__x").splitlines()[-1] == (
        f"        return {g}.o(self).__x"
    )
    refuse(
        "class C:\n    x = y.__sr_owned__",
        SandboxAttributeError,
        "sandbox policy blocks attribute '__sr_owned__' (t.py, line 2)",
    )


def test_stores_keep_their_evaluation_order() -> None:
    g = repr(PLACEHOLDER)
    assert rewrite("a.x, b._y = 1, 2") == f"{g}.o(a).x, {g}.o(b)._y = (1, 2)"
    assert rewrite("a.n += 1") == f"{g}.o(a).n += 1"
    assert rewrite("del a.x") == f"del {g}.o(a).x"
    assert rewrite("for self.i in r: pass") == f"for {g}.o(self).i in r:\n    pass"


def test_guarded_dunders_format_imports_and_classes() -> None:
    g = repr(PLACEHOLDER)
    assert rewrite("super().__init__()") == f"{g}.s(super(), '__init__')()"
    assert rewrite("s.format(x)") == f"{g}.f(s, 'format')(x)"
    assert rewrite("import a.b") == f"a = {g}.i('a.b', __name__)"
    assert rewrite("import a.b as c") == f"c = {g}.m('a.b', __name__)"
    assert rewrite("from .m import x, y as z") == f"x, z = {g}.fi('m', ('x', 'y'), 1, __name__)"
    assert rewrite('class A(B, metaclass=M):\n    """doc"""\n    x = 1').splitlines() == [
        f"@{g}.c",
        f"class A({g}.b(B), metaclass={g}.b(M)):",
        '    """doc"""',
        f"    __sr_token__ = {g}.t()",
        "    x = 1",
    ]


def test_compiled_code_carries_the_guards_as_a_constant() -> None:
    carrier = object()
    code = checker.compile_untrusted(
        "def f(o):\n    return o._x\n", "t.py", "exec", carrier, PLACEHOLDER
    )
    inner = next(c for c in code.co_consts if hasattr(c, "co_consts"))
    assert carrier in inner.co_consts
    assert PLACEHOLDER not in inner.co_consts


def test_each_process_has_its_own_placeholder() -> None:
    a, b = checker.new_placeholder(), checker.new_placeholder()
    assert a != b and a.startswith("sandbox-run guards ")
