"""The guest's half of a persistent session (the host's half: ``embed/``).

Runs in PyPy inside the trusted bootstrap, after the untrusted environment
is built; never imports controller code.  The bootstrap hands it the
untrusted code's namespace and the way to compile untrusted source (the
restricted checker, or plain ``compile``).

It serves the controller's requests, one at a time, over the channel
(descriptor 3, framed with ``wire``)::

    controller -> guest                      guest -> controller
    ("exec", id, source)                     ("ready",)
    ("eval", id, source)                     ("done", id, value)
    ("call", id, name, args, kwargs)         ("error", id, type, message, traceback)
    ("grant", names)                         ("host", id, name, args, kwargs)
    ("reply", id, value) / ("fail", id, message)   answers to "host"
    ("close",)

The controller sends the interrupt signal when a call's deadline passes,
and the handler raises ``DeadlineExceeded`` in the call (a BaseException,
so ``except Exception`` does not swallow it).  Between requests the handler
does nothing: a signal sent just as a call ended is delivered when the
guest's write of the answer returns, before it can read the next request.
Host functions are called from the thread that runs the request; their
answers are matched by id, and answers to abandoned calls dropped.
"""

import signal as _signal
import sys

import wire  # type: ignore[import-not-found, unused-ignore]

TYPE_CHECKING = False  # typing is not imported at run time (guest start-up cost)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

INTERRUPT = _signal.SIGUSR1


class DeadlineExceeded(BaseException):
    """The host's deadline for this call passed."""


DeadlineExceeded.__module__ = "builtins"  # reported as plain "DeadlineExceeded"


class Session:
    def __init__(
        self,
        fd: int,
        namespace: "Dict[str, Any]",
        compile_source: "Callable[[str, str, str], Any]",
        describe: "Callable[[], Tuple[str, str, str]]",
        host_error: "Callable[[str], BaseException]",
        make_stub: "Optional[Callable[[str], Any]]",
    ) -> None:
        import _thread
        import posix

        self._read = posix.read
        self._write = posix.write
        self._get_ident = _thread.get_ident
        self.fd = fd
        self.namespace = namespace
        self.compile_source = compile_source
        self.describe = describe  # (type, message, traceback) of the exception being handled
        self.host_error = host_error
        #: makes the callable untrusted code holds for a granted host function
        self.make_stub = make_stub
        self.frames = wire.FrameReader()
        self.pending: "List[Any]" = []
        self.active = False
        self.host_calls = 0
        self.owner = 0  # the thread running the current request
        self.streams = (sys.stdout, sys.stderr)  # the real ones, flushed after each request

    # --- the channel -------------------------------------------------------------------
    def send(self, message: "Any") -> None:
        self._write_all(wire.frame(message))

    def _write_all(self, data: bytes) -> None:
        while data:
            data = data[self._write(self.fd, data) :]

    def receive(self) -> "Optional[Tuple[str, Any]]":
        """The next message, or None when the controller closed the channel."""
        while not self.pending:
            data = self._read(self.fd, 65536)
            if not data:
                return None
            self.pending.extend(self.frames.feed(data))
        return wire.split(self.pending.pop(0))  # type: ignore[no-any-return]

    # --- serving ----------------------------------------------------------------------
    def serve(self) -> None:
        """Answer requests until the controller closes the session."""
        _signal.signal(INTERRUPT, self._interrupt)
        self.send(("ready",))
        while True:
            message = self.receive()
            if message is None:
                return
            kind, fields = message
            if kind in ("exec", "eval", "call"):
                self.request(kind, fields)
            elif kind == "grant" and self.make_stub is not None:
                for name in fields[0]:
                    self.namespace[name] = self.make_stub(name)
            elif kind == "close":
                return
            # Anything else (a late answer to an abandoned host call) is dropped.

    def _interrupt(self, signum: int, frame: "Any") -> None:
        if self.active:
            raise DeadlineExceeded("the host's deadline for this call passed")

    def request(self, kind: str, fields: "Any") -> None:
        call_id = fields[0]
        self.owner = self._get_ident()
        self.active = True
        try:
            value = self.run(kind, fields)
            self.active = False
            try:
                reply = wire.frame(("done", call_id, value))
            except wire.WireError as e:
                reply = wire.frame(
                    ("error", call_id, "TypeError", "the result is not plain data: %s" % e, "")
                )
        except SystemExit:
            raise  # the guest chose to end: the session ends with it
        except BaseException:
            self.active = False
            kind_name, message, text = self.describe()
            reply = wire.frame(("error", call_id, kind_name, message, text))
        self.flush()
        self._write_all(reply)

    def run(self, kind: str, fields: "Any") -> "Any":
        ns = self.namespace
        if kind == "exec":
            exec(self.compile_source(fields[1], "<exec>", "exec"), ns)  # noqa: S102
            return None
        if kind == "eval":
            return eval(self.compile_source(fields[1], "<eval>", "eval"), ns)  # noqa: S307
        name, args, kwargs = fields[1], fields[2], fields[3]
        fn = ns.get(name) if type(name) is str else None
        if fn is None or not callable(fn):
            raise NameError("the sandbox has no function named %r" % (name,))
        return fn(*args, **kwargs)

    def flush(self) -> None:
        for stream in self.streams:
            try:  # noqa: SIM105 - contextlib is not imported (start-up cost)
                stream.flush()
            except BaseException:
                pass

    # --- host functions ---------------------------------------------------------------
    def plain_stub(self, name: str) -> "Callable[..., Any]":
        """A host function as unrestricted code holds it."""
        call = self.host_call

        def stub(*args: "Any", **kwargs: "Any") -> "Any":
            return call(name, args, kwargs)

        stub.__name__ = stub.__qualname__ = name
        return stub

    def host_call(self, name: str, args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]") -> "Any":
        """Call host function ``name`` and wait for its answer (the stubs'
        transport).  Only the thread running a request may call."""
        if not self.active or self._get_ident() != self.owner:
            raise self.host_error(
                "host function %r: callable only while the host is calling in, "
                "and from that call's thread" % name
            )
        self.host_calls += 1
        call_id = self.host_calls
        try:
            self.send(("host", call_id, name, tuple(args), dict(kwargs)))
        except wire.WireError as e:
            raise self.host_error("host function %r: %s" % (name, e)) from None
        while True:
            message = self.receive()
            if message is None:
                raise SystemExit(0)  # the controller closed the session
            kind, fields = message
            if kind == "reply" and fields[0] == call_id:
                return fields[1]
            if kind == "fail" and fields[0] == call_id:
                raise self.host_error("host function %r: %s" % (name, fields[1]))
            if kind == "close":
                raise SystemExit(0)
            # An answer to an earlier, abandoned call: dropped.
