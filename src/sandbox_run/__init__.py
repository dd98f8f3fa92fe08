"""sandbox-run: run untrusted Python in a stock PyPy 3 whose system calls are
virtualised by a trusted trio controller.

The public API is this flat namespace::

    import sandbox_run
    result = sandbox_run.run("print(6 * 7)")
    result.stdout          # b"42\\n"
"""

from .api import (
    run,
    run_async,
    run_exec,
    run_exec_async,
    run_path,
    run_path_async,
)
from .errors import LaunchError, PolicyError, SandboxError
from .policy.schema import Mount, Policy
from .result import Denial, Outcome, Result

__version__ = "0.1.0"

__all__ = [
    "Denial",
    "LaunchError",
    "Mount",
    "Outcome",
    "Policy",
    "PolicyError",
    "Result",
    "SandboxError",
    "run",
    "run_async",
    "run_exec",
    "run_exec_async",
    "run_path",
    "run_path_async",
]
