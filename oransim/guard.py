"""Process-level guards of the ``oransim`` command: signals and last-resort error lines.

``signals_as_exceptions`` turns SIGTERM (``docker stop``, ``kill``), SIGHUP (a closed terminal or
SSH session) and SIGINT (Ctrl-C) into one exception, ``Stopped``, raised wherever the program is.
The stack then unwinds through every ``finally`` and context manager on the way, which is what
cleans up: an ns-3 server is stopped and its shared memory and temporary folder removed
(``Ns3ShmPhy.close``), a half-built output's temporary sibling is deleted
(``simcore.outputs``), an existing run folder is left as it was. A second signal while unwinding is
ignored, so that cleanup is not cut short; ``SIGKILL`` remains for a hung cleanup.

``Stopped`` derives from ``BaseException``, like ``KeyboardInterrupt``, so code that catches
``Exception`` to report a failed step does not swallow it.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(BaseException):
    """The process received ``signum``. Constructible from its ``args`` alone: SimPy re-creates an
    exception escaping a process as ``type(e)(*e.args)``."""

    def __init__(self, signum: int):
        super().__init__(int(signum))

    @property
    def signum(self) -> int:
        return self.args[0]

    def __str__(self) -> str:
        return f"stopped by {self.name}"

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # as a shell reports a process killed by the signal


def signal_in(exc: BaseException) -> BaseException | None:
    """The ``Stopped`` or ``KeyboardInterrupt`` that ``exc`` wraps, if any, else None.

    A signal that arrives while compiled code (a numba kernel) is running is raised when that code
    hands control back, and C callers then report it as ``SystemError: ... returned a result with
    an exception set`` with the signal's exception as its cause. Code that catches ``Exception`` to
    report a failed step asks this first, so that a Ctrl-C never reads as a failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (Stopped, KeyboardInterrupt)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def signals_as_exceptions(signums=SIGNALS):
    """Within the block, the first of ``signums`` raises ``Stopped``; later ones are ignored."""
    received: list[int] = []

    def handler(signum, frame):
        if received:
            return  # already unwinding: let the cleanup finish
        received.append(signum)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
