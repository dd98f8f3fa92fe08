"""The policy schema: one definition for TOML files, CLI flags and the API.

A policy file is TOML::

    [limits]
    timeout = "30s"        # wall clock; the guest is killed when it runs out
    memory = "512MiB"      # cap on the guest's memory (address space)

    [[mount]]
    host = "data"          # host directory, relative to the policy file
    guest = "/data"        # where the guest sees it (absolute)
    mode = "ro"            # "ro" (default) or "rw"

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
from .units import format_duration, format_size, parse_duration, parse_size

MiB = 1 << 20
GiB = 1 << 30

DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY = 512 * MiB
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

MountMode = Literal["ro", "rw"]


@dataclass(frozen=True, slots=True)
class Mount:
    """A host directory visible to the guest."""

    host: str
    guest: str
    mode: MountMode = "ro"

    def __post_init__(self) -> None:
        if self.mode not in ("ro", "rw"):
            raise PolicyError(f"mount {self.guest}: mode must be 'ro' or 'rw', not {self.mode!r}")
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
        return self.mode == "rw"

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """``HOST:GUEST[:ro|rw]``, as on the command line."""
        parts = spec.split(":")
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            return cls(parts[0], parts[1], parts[2])  # type: ignore[arg-type]
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        raise PolicyError(f"--mount {spec!r}: expected HOST:GUEST[:ro|rw]")


def _check_module_names(key: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(m, str) for m in value):
        raise PolicyError(f"{key}: expected a list of module names, got {value!r}")
    for m in value:
        if not m or not all(part.isidentifier() for part in m.split(".")):
            raise PolicyError(f"{key}: {m!r} is not a module name")


@dataclass(frozen=True, slots=True)
class Policy:
    """What a sandbox may do.  Seconds and bytes; see the module docstring."""

    timeout: float = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY
    mounts: tuple[Mount, ...] = field(default=())
    #: The in-guest restricted mode; off only for trusted code (--no-restrict).
    restricted: bool = True
    add_modules: tuple[str, ...] = ()
    remove_modules: tuple[str, ...] = ()
    threads: bool = False

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
        for key in ("restricted", "threads"):
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

    def replace(self, **changes: Any) -> Policy:
        return dataclasses.replace(self, **changes)

    def allowed_modules(self) -> tuple[str, ...]:
        """The restricted mode's import allow-list: defaults, plus and minus the policy's."""
        allowed = set(restricted_names.DEFAULT_MODULES) | set(self.add_modules)
        if self.threads:
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
        _only(data, {"limits", "mount", "restricted"}, source)
        kw: dict[str, Any] = {}
        limits = data.get("limits", {})
        if not isinstance(limits, Mapping):
            raise PolicyError(f"{source}: [limits] must be a table")
        _only(limits, {"timeout", "memory"}, f"{source}: [limits]")
        if "timeout" in limits:
            kw["timeout"] = parse_duration(limits["timeout"], "limits.timeout")
        if "memory" in limits:
            kw["memory"] = parse_size(limits["memory"], "limits.memory")
        mounts = data.get("mount", [])
        if not isinstance(mounts, list):
            raise PolicyError(f"{source}: mounts are written [[mount]]")
        out = []
        for i, m in enumerate(mounts):
            where = f"{source}: [[mount]] #{i + 1}"
            if not isinstance(m, Mapping):
                raise PolicyError(f"{where}: must be a table")
            _only(m, {"host", "guest", "mode"}, where)
            for key in ("host", "guest"):
                if not isinstance(m.get(key), str):
                    raise PolicyError(f"{where}: '{key}' (a path) is required")
            mode = m.get("mode", "ro")
            host = os.path.join(base_dir, os.path.expanduser(m["host"]))
            out.append(Mount(host, m["guest"], mode))
        kw["mounts"] = tuple(out)
        restricted = data.get("restricted", {})
        if not isinstance(restricted, Mapping):
            raise PolicyError(f"{source}: [restricted] must be a table")
        where = f"{source}: [restricted]"
        _only(restricted, {"enabled", "add_modules", "remove_modules", "threads"}, where)
        for key, field_name in (("enabled", "restricted"), ("threads", "threads")):
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
                "memory": format_size(self.memory),
            },
            "mount": [{"host": m.host, "guest": m.guest, "mode": m.mode} for m in self.mounts],
            "restricted": {
                "enabled": self.restricted,
                "add_modules": list(self.add_modules),
                "remove_modules": list(self.remove_modules),
                "threads": self.threads,
            },
        }


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise PolicyError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(allowed))})")
