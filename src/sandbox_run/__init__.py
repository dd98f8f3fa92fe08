"""sandbox-run: run untrusted Python in a stock PyPy 3 whose system calls are
virtualised by a trusted trio controller.

The public API is this flat namespace::

    import sandbox_run
    result = sandbox_run.run("print(6 * 7)")
    result.stdout          # b"42\\n"

Names are imported on first use, so that ``sandbox-run --help`` and command-
line errors do not pay for importing trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "run": "api",
    "run_async": "api",
    "run_exec": "api",
    "run_exec_async": "api",
    "run_path": "api",
    "run_path_async": "api",
    "BlockingSandbox": "embed.blocking",
    "Capability": "embed.capabilities",
    "Pool": "embed.pool",
    "Sandbox": "embed.sandbox",
    "CallDeadlineExceeded": "errors",
    "CapabilityError": "errors",
    "GuestError": "errors",
    "LaunchError": "errors",
    "PolicyError": "errors",
    "SandboxClosed": "errors",
    "SandboxError": "errors",
    "AuditEvent": "net.audit",
    "NetworkPolicy": "net.config",
    "Mount": "policy.schema",
    "Policy": "policy.schema",
    "Quota": "policy.schema",
    "AreaReport": "result",
    "Denial": "result",
    "FileChange": "result",
    "Outcome": "result",
    "Result": "result",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names, eagerly, for type checkers (re-exported)
    from .api import run as run
    from .api import run_async as run_async
    from .api import run_exec as run_exec
    from .api import run_exec_async as run_exec_async
    from .api import run_path as run_path
    from .api import run_path_async as run_path_async
    from .embed.blocking import BlockingSandbox as BlockingSandbox
    from .embed.capabilities import Capability as Capability
    from .embed.pool import Pool as Pool
    from .embed.sandbox import Sandbox as Sandbox
    from .errors import CallDeadlineExceeded as CallDeadlineExceeded
    from .errors import CapabilityError as CapabilityError
    from .errors import GuestError as GuestError
    from .errors import LaunchError as LaunchError
    from .errors import PolicyError as PolicyError
    from .errors import SandboxClosed as SandboxClosed
    from .errors import SandboxError as SandboxError
    from .net.audit import AuditEvent as AuditEvent
    from .net.config import NetworkPolicy as NetworkPolicy
    from .policy.schema import Mount as Mount
    from .policy.schema import Policy as Policy
    from .policy.schema import Quota as Quota
    from .result import AreaReport as AreaReport
    from .result import Denial as Denial
    from .result import FileChange as FileChange
    from .result import Outcome as Outcome
    from .result import Result as Result


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox_run' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
