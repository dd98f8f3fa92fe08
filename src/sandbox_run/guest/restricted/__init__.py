"""The restricted environment: what untrusted code sees inside the guest.

Runs inside PyPy 3.9 (3.9 syntax and stdlib only) and never imports
controller code.  The bootstrap imports it as the top-level package
``restricted`` (from the read-only /usr/lib/sandbox-run); the host side sees
it as ``sandbox_run.guest.restricted`` (type checks, and the policy schema's
module lists in ``names``).

Modules:

- ``names``: every allow- and deny-list, in one place, each with its reason;
- ``checker``: the compile-time AST checker and rewriter;
- ``guards``: the run-time guards the rewritten code calls;
- ``formatting``: ``str.format`` and ``string.Formatter`` with guarded fields;
- ``modules``: the import allow-list, module views, restricted ``sys``/``os``;
- ``capabilities``: how the prelude's grants and host functions appear;
- ``environment``: builds the restricted builtins and runs untrusted code.
"""
