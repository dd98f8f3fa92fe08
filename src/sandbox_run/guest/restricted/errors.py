"""The exceptions the restricted mode raises: ordinary Python exception types,
so that ordinary ``except AttributeError`` / ``except ImportError`` code keeps
working, with messages that say the sandbox policy blocked something."""


class SandboxAttributeError(AttributeError):
    """An attribute the sandbox policy blocks (read, write or delete)."""


class SandboxNameError(NameError):
    """A name the sandbox policy reserves."""


class SandboxImportError(ModuleNotFoundError):
    """A module the sandbox policy does not allow."""


class SandboxSyntaxError(SyntaxError):
    """Source that uses syntax the checker does not allow."""


class HostCallError(RuntimeError):
    """A call to a host function could not be made."""


for _cls in (
    SandboxAttributeError,
    SandboxNameError,
    SandboxImportError,
    SandboxSyntaxError,
    HostCallError,
):
    _cls.__module__ = "builtins"  # tracebacks print the bare class name
