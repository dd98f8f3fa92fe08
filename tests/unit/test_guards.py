"""The run-time name rules, as pure functions (no guest process).  The
escape corpus in tests/guest exercises them inside PyPy."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_run.guest.restricted import guards, names
from sandbox_run.guest.restricted.errors import SandboxAttributeError


class Foreign:
    """An object that is not the untrusted code's own."""


def readable_by_rule(name: str) -> bool:
    """The documented rule, written independently of the guard's code."""
    for n in {name, unicodedata.normalize("NFKC", name)}:
        if n.startswith(("__sr_", "_sr_")) or n in names.DENIED_ATTRIBUTES:
            return False
        if len(n) > 4 and n.startswith("__") and n.endswith("__"):
            if n not in names.SAFE_DUNDERS | names.GUARDED_DUNDERS | {"__dict__"}:
                return False
        elif n.startswith("_"):
            return False
    return True


names_strategy = st.one_of(
    st.text(max_size=12),
    st.builds(lambda s: "__" + s + "__", st.text(min_size=1, max_size=10)),
    st.builds(lambda s: "_" + s, st.text(max_size=10)),
    st.sampled_from(sorted(names.DENIED_ATTRIBUTES | names.SAFE_DUNDERS)),
)


@given(names_strategy)
def test_reads_of_foreign_objects_follow_the_rule(name: str) -> None:
    try:
        guards.check_read(Foreign(), name)
    except SandboxAttributeError:
        assert not readable_by_rule(name)
    else:
        assert readable_by_rule(name)


@given(names_strategy)
def test_writes_to_foreign_classes_are_always_refused(name: str) -> None:
    with pytest.raises(SandboxAttributeError):
        guards.check_write(Foreign, name)


def test_attribute_names_must_be_exact_str() -> None:
    class Name(str):
        pass

    with pytest.raises(TypeError, match="attribute names must be plain str, not Name"):
        guards.check_read(Foreign(), Name("x"))
    with pytest.raises(TypeError, match="attribute name must be string, not 'int'"):
        guards.check_read(Foreign(), 3)


def test_fullwidth_names_are_checked_in_normal_form() -> None:
    with pytest.raises(SandboxAttributeError, match="attribute '__globals__'"):
        guards.check_read(Foreign(), "__\uff47lobals__")
    with pytest.raises(SandboxAttributeError, match="its normal form '_db' is private"):
        guards.check_read(Foreign(), "\uff3fdb")  # FULLWIDTH LOW LINE
