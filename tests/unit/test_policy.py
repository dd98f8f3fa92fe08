"""The policy schema: units, unknown keys, mounts, one-line errors."""

from __future__ import annotations

import pathlib
import re

import pytest

from sandbox_run import Mount, Policy, PolicyError, Quota
from sandbox_run.policy.units import parse_duration, parse_size


def test_defaults_are_secure_and_documented() -> None:
    p = Policy()
    assert p.timeout == 30.0
    assert p.memory == 512 << 20
    assert p.mounts == ()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("250ms", 0.25), ("1.5m", 90), ("2h", 7200), (" 10 s ", 10)]
)
def test_durations_need_and_honour_units(text: str, seconds: float) -> None:
    assert parse_duration(text, "t") == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MiB", 512 << 20), ("1GiB", 1 << 30), ("100kB", 100_000), ("2G", 2 << 30), ("10B", 10)],
)
def test_sizes_need_and_honour_units(text: str, size: int) -> None:
    assert parse_size(text, "m") == size


@pytest.mark.parametrize("bad", ["30", 30, "30 parsecs", "-1s", "0s", True, None, "s"])
def test_bad_durations_are_refused_with_the_field_named(bad: object) -> None:
    with pytest.raises(PolicyError, match=r"^limits\.timeout: "):
        parse_duration(bad, "limits.timeout")


def test_a_bare_number_asks_for_a_unit() -> None:
    with pytest.raises(PolicyError, match="give a unit"):
        parse_size("512", "--memory")


def test_toml_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "data").mkdir()
    f = tmp_path / "p.toml"
    f.write_text(
        '[limits]\ntimeout = "5s"\nmemory = "256MiB"\n\n'
        '[[mount]]\nhost = "data"\nguest = "/data"\nmode = "rw"\n'
    )
    p = Policy.from_toml(f)
    assert p.timeout == 5 and p.memory == 256 << 20
    assert p.mounts == (Mount(str(tmp_path / "data"), "/data", "rw"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\ntimout = '5s'\n", "unknown key 'timout'"),
        ("[limit]\n", "unknown key 'limit'"),
        ("[[mount]]\nhost='a'\nguest='/a'\nwritable=true\n", "unknown key 'writable'"),
        ("[[mount]]\nguest='/a'\n", "'host' (a path) is required"),
        ("[[mount]]\nhost='a'\nguest='rel'\n", "guest path must be absolute"),
        ("[[mount]]\nhost='a'\nguest='/usr/lib'\n", "/usr is provided by the sandbox"),
        (
            "[[mount]]\nhost='a'\nguest='/x'\nmode='rwx'\n",
            "mode must be one of ro, rw, overlay, tmpfs",
        ),
        ("[limits]\nmemory = '10MiB'\n", "at least 96MiB"),
        ("[limits]\ntimeout = 5\n", "give a unit"),
        ("not toml [", "policy file"),
    ],
)
def test_bad_policies_name_the_problem(tmp_path: pathlib.Path, text: str, message: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(PolicyError, match=re.escape(message)) as info:
        Policy.from_toml(f)
    assert "\n" not in str(info.value).strip()


def test_missing_policy_file_is_named(tmp_path: pathlib.Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        Policy.from_toml(tmp_path / "nope.toml")


def test_mount_flag_syntax() -> None:
    assert Mount.parse("/h:/g") == Mount("/h", "/g", "ro")
    assert Mount.parse("/h:/g:rw") == Mount("/h", "/g", "rw")
    with pytest.raises(PolicyError, match="HOST:GUEST"):
        Mount.parse("/h")
    with pytest.raises(PolicyError, match="normal form"):
        Mount("/h", "/a/../b")


def test_round_trip_through_dict() -> None:
    p = Policy(timeout=2.5, memory=300 << 20, mounts=(Mount("/h", "/g", "rw"),))
    again = Policy.from_dict(p.to_dict())
    assert again == p


def test_shipped_presets_parse() -> None:
    root = pathlib.Path(__file__).resolve().parents[2] / "policies"
    assert Policy.from_toml(root / "default.toml") == Policy()
    example = Policy.from_toml(root / "example.toml")
    assert [m.guest for m in example.mounts] == ["/data", "/out"]


def test_quotas_in_files(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[private]\nmax_bytes = "8MiB"\nmax_files = 100\nmax_file_size = "1MiB"\n'
        '[[mount]]\nhost = "."\nguest = "/out"\nmode = "rw"\nmax_bytes = "2MiB"\ndiff = true\n'
        '[[mount]]\nguest = "/scratch"\nmode = "tmpfs"\nmax_files = 5\n'
    )
    p = Policy.from_toml(f)
    assert p.private == Quota(8 << 20, 100, 1 << 20)
    out, scratch = p.mounts
    assert out.mode == "rw" and out.quota.max_bytes == 2 << 20 and out.diff
    assert out.quota.max_files == Quota().max_files  # unspecified keys keep their default
    assert scratch.host == "" and scratch.quota.max_files == 5
    assert Policy.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[private]\nmax_files = 0\n", "private.max_files: expected a positive whole number"),
        ("[private]\nmax_files = '10'\n", "private.max_files: expected a positive whole number"),
        ("[private]\nsize = '1MiB'\n", "unknown key 'size'"),
        ("[[mount]]\nguest = '/s'\nmode = 'tmpfs'\nhost = 'x'\n", "a tmpfs has no 'host'"),
        ("[[mount]]\nguest = '/s'\nmode = 'rw'\n", "'host' (a path) is required"),
        ("[[mount]]\nhost = 'x'\nguest = '/s'\ndiff = 'yes'\n", "'diff' must be true or false"),
        ("[[mount]]\nhost = 'x'\nguest = '/s'\nmax_bytes = 5\n", "give a unit"),
    ],
)
def test_bad_quotas_name_the_problem(tmp_path: pathlib.Path, text: str, message: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(PolicyError, match=re.escape(message)):
        Policy.from_toml(f)


def test_tmpfs_flag_syntax() -> None:
    assert Mount.parse_tmpfs("/s") == Mount("", "/s", "tmpfs")
    assert Mount.parse_tmpfs("/s:1MiB").quota.max_bytes == 1 << 20
    assert Mount.parse("/h:/g:overlay").mode == "overlay"
    with pytest.raises(PolicyError, match="a tmpfs has no host path"):
        Mount("/h", "/g", "tmpfs")
