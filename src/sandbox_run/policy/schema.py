"""The policy schema: one definition for TOML files, CLI flags and the API.

A policy file is TOML::

    [limits]
    timeout = "30s"        # wall clock; the guest is killed when it runs out
    cpu_time = "30s"       # CPU time, all threads together
    memory = "512MiB"      # the guest's memory; the heap limit sits below it
    output = "16MiB"       # stdout and stderr together; then truncated and ended
    open_files = 256       # descriptors open at once
    threads = 16           # threads alive at once
    recursion_limit = 1000 # Python's recursion limit
    kill_on_refusal = false  # end the guest at its first refused system call

    [private]              # /sandbox and /tmp
    max_bytes = "256MiB"
    max_files = 10000
    max_file_size = "256MiB"

    [[mount]]
    host = "data"          # host directory or file, relative to the policy file
    guest = "/data"        # where the guest sees it (absolute)
    mode = "ro"            # "ro" (default), "rw", "overlay" or "tmpfs"
    max_bytes = "1GiB"     # rw, overlay, tmpfs: the quota (as in [private])
    diff = false           # rw, overlay: report a diff of changed text files

    [network]              # see docs/network.md; nothing is reachable by default
    allow = ["example.com:443", "*.example.com:443", "udp:10.0.0.53:53"]
    listen = ["8080"]      # TCP ports the guest may listen on, loopback only
    max_connections = 32
    max_bytes = "100MiB"   # optional cap on bytes transferred
    [network.hosts]
    "api.test" = "127.0.0.5"

    [restricted]
    enabled = true         # the in-guest restricted mode (docs/restricted-mode.md)
    add_modules = []       # modules added to the default import allow-list
    remove_modules = []    # modules removed from it
    threads = false        # may untrusted code import threading

Every key is optional; unknown keys are an error that names the key.  Values
carry their units ("30s", "512MiB"): a bare number is refused, never guessed.
In the Python API the same settings are plain numbers in seconds and bytes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import PolicyError
from ..guest.restricted import names as restricted_names
from ..net.config import NetworkPolicy
from .units import format_duration, format_size, parse_duration, parse_size

MiB = 1 << 20
GiB = 1 << 30

DEFAULT_TIMEOUT = 30.0
DEFAULT_CPU_TIME = 30.0
DEFAULT_MEMORY = 512 * MiB
DEFAULT_OUTPUT = 16 * MiB
DEFAULT_OPEN_FILES = 256
DEFAULT_THREADS = 16
DEFAULT_RECURSION_LIMIT = 1000
#: Ranges the whole-number limits must fall in.
_INT_LIMITS = {
    "open_files": (16, 1 << 20),
    "threads": (1, 4096),
    "recursion_limit": (50, 50_000),  # each unit costs about 1 KiB of stack
}
MIN_MEMORY = 96 * MiB
MAX_TIMEOUT = 7 * 24 * 3600.0
#: Virtual paths the sandbox itself provides; mounts may not cover them.
RESERVED_PATHS = (
    "/",
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/etc",
    "/proc",
    "/dev",
    "/sys",
    "/sandbox",
    "/tmp",
)

MountMode = Literal["ro", "rw", "overlay", "tmpfs"]
MOUNT_MODES = ("ro", "rw", "overlay", "tmpfs")


@dataclass(frozen=True, slots=True)
class Quota:
    """Limits on what the guest may store in one writable area."""

    max_bytes: int = 256 * MiB  # total bytes stored (staged in memory until the end)
    max_files: int = 10_000  # files, directories and links created (or copied up)
    max_file_size: int = 256 * MiB  # largest single file

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_files", "max_file_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise PolicyError(f"{name}: expected a positive whole number, got {v!r}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str, base: Quota | None = None) -> Quota:
        base = base or cls()
        kw: dict[str, int] = {}
        if "max_bytes" in table:
            kw["max_bytes"] = parse_size(table["max_bytes"], f"{where}.max_bytes")
        if "max_file_size" in table:
            kw["max_file_size"] = parse_size(table["max_file_size"], f"{where}.max_file_size")
        if "max_files" in table:
            n = table["max_files"]
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
                raise PolicyError(f"{where}.max_files: expected a positive whole number, got {n!r}")
            kw["max_files"] = n
        return dataclasses.replace(base, **kw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_bytes": format_size(self.max_bytes),
            "max_files": self.max_files,
            "max_file_size": format_size(self.max_file_size),
        }


QUOTA_KEYS = {"max_bytes", "max_files", "max_file_size"}
LIMIT_KEYS = {
    "timeout",
    "cpu_time",
    "memory",
    "output",
    "open_files",
    "threads",
    "recursion_limit",
    "kill_on_refusal",
    "call_timeout",
    "call_cpu_time",
    "end_on_call_deadline",
}


@dataclass(frozen=True, slots=True)
class Mount:
    """Something visible to the guest at ``guest``:

    - ``ro``: a host directory or file, read-only;
    - ``rw``: a host directory or file; the guest's changes are applied to the
      host when the sandbox ends (each file replaced atomically, see
      docs/filesystem.md), within ``quota``;
    - ``overlay``: a host directory or file the guest may change, but its
      changes stay in the sandbox and are reported, never applied;
    - ``tmpfs``: a private in-memory directory (``host`` is empty).
    """

    host: str
    guest: str
    mode: MountMode = "ro"
    quota: Quota = field(default_factory=Quota)
    diff: bool = False  # rw and overlay: report a unified diff of changed text files

    def __post_init__(self) -> None:
        if self.mode not in MOUNT_MODES:
            modes = ", ".join(MOUNT_MODES)
            raise PolicyError(f"mount {self.guest}: mode must be one of {modes}, not {self.mode!r}")
        if (self.mode == "tmpfs") != (self.host == ""):
            raise PolicyError(f"mount {self.guest}: a tmpfs has no host path; other modes need one")
        if not isinstance(self.quota, Quota):
            raise PolicyError(f"mount {self.guest}: quota must be a Quota")
        g = self.guest
        if not g.startswith("/"):
            raise PolicyError(f"mount {g!r}: the guest path must be absolute")
        norm = os.path.normpath(g)
        if norm != g.rstrip("/") or "\0" in g:
            raise PolicyError(f"mount {g!r}: write the guest path in normal form ({norm})")
        for r in RESERVED_PATHS:
            if norm == r or (r != "/" and norm.startswith(r + "/")):
                raise PolicyError(
                    f"mount {g!r}: {r} is provided by the sandbox and cannot be mounted over"
                )

    @property
    def writable(self) -> bool:
        return self.mode != "ro"

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """``HOST:GUEST[:ro|rw|overlay]``, as on the command line."""
        parts = spec.split(":")
        if len(parts) == 3 and parts[2] in ("ro", "rw", "overlay"):
            return cls(parts[0], parts[1], parts[2])  # type: ignore[arg-type]
        if len(parts) == 2 and parts[0]:
            return cls(parts[0], parts[1])
        raise PolicyError(f"--mount {spec!r}: expected HOST:GUEST[:ro|rw|overlay]")

    @classmethod
    def parse_tmpfs(cls, spec: str) -> Mount:
        """``GUEST[:SIZE]``, as on the command line."""
        guest, _, size = spec.partition(":")
        quota = Quota(max_bytes=parse_size(size, "--tmpfs size")) if size else Quota()
        return cls("", guest, "tmpfs", quota)


def _check_module_names(key: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(m, str) for m in value):
        raise PolicyError(f"{key}: expected a list of module names, got {value!r}")
    for m in value:
        if not m or not all(part.isidentifier() for part in m.split(".")):
            raise PolicyError(f"{key}: {m!r} is not a module name")


@dataclass(frozen=True, slots=True)
class Policy:
    """What a sandbox may do.  Seconds and bytes; see the module docstring."""

    timeout: float = DEFAULT_TIMEOUT  # wall clock, seconds
    cpu_time: float = DEFAULT_CPU_TIME  # CPU seconds, all threads together
    memory: int = DEFAULT_MEMORY  # bytes
    output: int = DEFAULT_OUTPUT  # bytes of stdout and stderr together
    open_files: int = DEFAULT_OPEN_FILES  # descriptors open at once
    threads: int = DEFAULT_THREADS  # threads alive at once, the main one included
    recursion_limit: int = DEFAULT_RECURSION_LIMIT  # Python's, set before the script runs
    kill_on_refusal: bool = False  # end the guest at its first refused system call
    #: sessions (Sandbox): each call's own wall-clock and CPU deadlines, seconds
    call_timeout: float | None = None
    call_cpu_time: float | None = None
    #: sessions: a call past its deadline ends the session (default: only the call)
    end_on_call_deadline: bool = False
    mounts: tuple[Mount, ...] = field(default=())
    #: limits of the private writable area (/sandbox and /tmp together)
    private: Quota = field(default_factory=Quota)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    #: The in-guest restricted mode; off only for trusted code (--no-restrict).
    restricted: bool = True
    add_modules: tuple[str, ...] = ()
    remove_modules: tuple[str, ...] = ()
    #: whether untrusted code may import _thread and threading ([restricted] threads)
    allow_threads: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.timeout, (int, float)) or isinstance(self.timeout, bool):
            raise PolicyError(f"timeout: expected seconds, got {self.timeout!r}")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise PolicyError(f"timeout: must be between 0 and {MAX_TIMEOUT:g} seconds")
        if not isinstance(self.memory, int) or isinstance(self.memory, bool):
            raise PolicyError(f"memory: expected bytes, got {self.memory!r}")
        if self.memory < MIN_MEMORY:
            raise PolicyError(
                f"memory: at least {format_size(MIN_MEMORY)} is needed to start "
                f"the interpreter, got {format_size(self.memory)}"
            )
        if not isinstance(self.cpu_time, (int, float)) or isinstance(self.cpu_time, bool):
            raise PolicyError(f"cpu_time: expected seconds, got {self.cpu_time!r}")
        if not 0 < self.cpu_time <= MAX_TIMEOUT:
            raise PolicyError(f"cpu_time: must be between 0 and {MAX_TIMEOUT:g} seconds")
        if not isinstance(self.output, int) or isinstance(self.output, bool) or self.output < 1:
            raise PolicyError(f"output: expected a positive number of bytes, got {self.output!r}")
        for name, (lo, hi) in _INT_LIMITS.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise PolicyError(f"{name}: expected a whole number from {lo} to {hi}, got {v!r}")
        for key in ("call_timeout", "call_cpu_time"):
            v = getattr(self, key)
            if v is not None and (
                not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= MAX_TIMEOUT
            ):
                raise PolicyError(f"{key}: expected seconds, more than 0, or None; got {v!r}")
        if not isinstance(self.end_on_call_deadline, bool):
            raise PolicyError(
                f"end_on_call_deadline: expected true or false, got {self.end_on_call_deadline!r}"
            )
        if not isinstance(self.kill_on_refusal, bool):
            raise PolicyError(
                f"kill_on_refusal: expected true or false, got {self.kill_on_refusal!r}"
            )
        if not isinstance(self.private, Quota):
            raise PolicyError(f"private: expected a Quota, got {self.private!r}")
        for key in ("restricted", "allow_threads"):
            if not isinstance(getattr(self, key), bool):
                raise PolicyError(f"{key}: expected true or false, got {getattr(self, key)!r}")
        _check_module_names("add_modules", self.add_modules)
        _check_module_names("remove_modules", self.remove_modules)
        for name in self.add_modules:
            why = restricted_names.FORBIDDEN_MODULES.get(name)
            if why is not None:
                raise PolicyError(f"add_modules: {name!r} can never be allowed ({why})")
        seen: set[str] = set()
        for m in self.mounts:
            if not isinstance(m, Mount):
                raise PolicyError(f"mounts: expected Mount objects, got {m!r}")
            if m.guest in seen:
                raise PolicyError(f"mount {m.guest}: mounted twice")
            seen.add(m.guest)
        if not isinstance(self.network, NetworkPolicy):
            raise PolicyError(f"network: expected a NetworkPolicy, got {self.network!r}")

    def replace(self, **changes: Any) -> Policy:
        return dataclasses.replace(self, **changes)

    def allowed_modules(self) -> tuple[str, ...]:
        """The restricted mode's import allow-list: defaults, plus and minus the policy's."""
        allowed = set(restricted_names.DEFAULT_MODULES) | set(self.add_modules)
        if self.allow_threads:
            allowed |= restricted_names.THREAD_MODULES
        return tuple(sorted(allowed - set(self.remove_modules)))

    # --- files ---------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Policy:
        import tomllib

        p = os.fspath(path)
        try:
            with open(p, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise PolicyError(f"policy file {p} does not exist") from None
        except OSError as e:
            raise PolicyError(f"policy file {p}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(f"policy file {p}: {e}") from None
        return cls.from_dict(data, base_dir=os.path.dirname(os.path.abspath(p)), source=p)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str = ".", source: str = "policy"
    ) -> Policy:
        """Build a policy from parsed TOML.  Relative host paths start at ``base_dir``."""
        _only(data, {"limits", "mount", "private", "network", "restricted"}, source)
        kw: dict[str, Any] = {}
        limits = data.get("limits", {})
        if not isinstance(limits, Mapping):
            raise PolicyError(f"{source}: [limits] must be a table")
        _only(limits, LIMIT_KEYS, f"{source}: [limits]")
        for key in ("timeout", "cpu_time", "call_timeout", "call_cpu_time"):
            if key in limits:
                kw[key] = parse_duration(limits[key], f"limits.{key}")
        for key in ("memory", "output"):
            if key in limits:
                kw[key] = parse_size(limits[key], f"limits.{key}")
        for key in _INT_LIMITS:
            if key in limits:
                v = limits[key]
                if not isinstance(v, int) or isinstance(v, bool):
                    raise PolicyError(f"limits.{key}: expected a whole number, got {v!r}")
                kw[key] = v
        for key in ("kill_on_refusal", "end_on_call_deadline"):
            if key in limits:
                if not isinstance(limits[key], bool):
                    raise PolicyError(f"limits.{key}: expected true or false")
                kw[key] = limits[key]
        private = data.get("private", {})
        if not isinstance(private, Mapping):
            raise PolicyError(f"{source}: [private] must be a table")
        _only(private, QUOTA_KEYS, f"{source}: [private]")
        kw["private"] = Quota.from_table(private, "private")
        mounts = data.get("mount", [])
        if not isinstance(mounts, list):
            raise PolicyError(f"{source}: mounts are written [[mount]]")
        out = []
        for i, m in enumerate(mounts):
            where = f"{source}: [[mount]] #{i + 1}"
            if not isinstance(m, Mapping):
                raise PolicyError(f"{where}: must be a table")
            _only(m, {"host", "guest", "mode", "diff"} | QUOTA_KEYS, where)
            mode = m.get("mode", "ro")
            if not isinstance(m.get("guest"), str):
                raise PolicyError(f"{where}: 'guest' (a path) is required")
            if mode == "tmpfs":
                if "host" in m:
                    raise PolicyError(f"{where}: a tmpfs has no 'host'")
                host = ""
            else:
                if not isinstance(m.get("host"), str):
                    raise PolicyError(f"{where}: 'host' (a path) is required")
                host = os.path.join(base_dir, os.path.expanduser(m["host"]))
            diff = m.get("diff", False)
            if not isinstance(diff, bool):
                raise PolicyError(f"{where}: 'diff' must be true or false")
            out.append(Mount(host, m["guest"], mode, Quota.from_table(m, where), diff))
        kw["mounts"] = tuple(out)
        if "network" in data:
            net = data["network"]
            if not isinstance(net, Mapping):
                raise PolicyError(f"{source}: [network] must be a table")
            kw["network"] = NetworkPolicy.from_dict(
                net, base_dir=base_dir, where=f"{source}: [network]"
            )
        restricted = data.get("restricted", {})
        if not isinstance(restricted, Mapping):
            raise PolicyError(f"{source}: [restricted] must be a table")
        where = f"{source}: [restricted]"
        _only(restricted, {"enabled", "add_modules", "remove_modules", "threads"}, where)
        for key, field_name in (("enabled", "restricted"), ("threads", "allow_threads")):
            if key in restricted:
                if not isinstance(restricted[key], bool):
                    raise PolicyError(f"{where}: '{key}' must be true or false")
                kw[field_name] = restricted[key]
        for key in ("add_modules", "remove_modules"):
            if key in restricted:
                if not isinstance(restricted[key], list):
                    raise PolicyError(f"{where}: '{key}' must be a list of module names")
                kw[key] = tuple(restricted[key])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The policy in TOML terms (units included)."""
        return {
            "limits": {
                "timeout": format_duration(self.timeout),
                "cpu_time": format_duration(self.cpu_time),
                "memory": format_size(self.memory),
                "output": format_size(self.output),
                "open_files": self.open_files,
                "threads": self.threads,
                "recursion_limit": self.recursion_limit,
                "kill_on_refusal": self.kill_on_refusal,
                "end_on_call_deadline": self.end_on_call_deadline,
            }
            | {
                key: format_duration(getattr(self, key))
                for key in ("call_timeout", "call_cpu_time")
                if getattr(self, key) is not None
            },
            "private": self.private.to_dict(),
            "mount": [_mount_dict(m) for m in self.mounts],
            "network": self.network.to_dict(),
            "restricted": {
                "enabled": self.restricted,
                "add_modules": list(self.add_modules),
                "remove_modules": list(self.remove_modules),
                "threads": self.allow_threads,
            },
        }


def _mount_dict(m: Mount) -> dict[str, Any]:
    out: dict[str, Any] = {"guest": m.guest, "mode": m.mode}
    if m.host:
        out["host"] = m.host
    if m.writable:
        out.update(m.quota.to_dict())
        if m.diff:
            out["diff"] = True
    return out


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise PolicyError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(allowed))})")
