"""Keep one worker process running: restart it when it dies, stop it when asked to.

faust ends its worker process on an error it cannot handle, for instance a transaction commit
cut off by a broker restart (seen in the fault suite: the stream exited and payments waited for
a human). Nothing is lost then (the inputs are in Kafka, the worker resumes from the committed
offsets and the committed changelog), but nothing moves either. ``paynotify stream`` therefore
runs its faust worker as a child of this small supervisor, which restarts it with a growing
pause (1 s, doubling, at most 30 s) and passes SIGTERM/SIGINT on. The child is killed with the
supervisor (``PR_SET_PDEATHSIG``), so ``kill -9`` of ``paynotify stream`` leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("paynotify.supervisor")
PR_SET_PDEATHSIG = 1
FIRST_PAUSE_S, LONGEST_PAUSE_S = 1.0, 30.0
STEADY_S = 60.0  # a child that ran this long resets the pause


def die_with_parent() -> None:
    """In the child, before exec: be killed when the supervisor dies (Linux)."""
    with contextlib.suppress(OSError):  # not Linux: the child outlives a kill -9 of us
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def supervise(command: Sequence[str], name: str, first_pause_s: float = FIRST_PAUSE_S) -> int:
    """Run ``command`` until it exits 0 or this process is told to stop; return its code.

    A worker that ends by the very signal passed on to it (told to stop before it had set up its
    own handler, e.g. while still importing) has stopped as asked: that is 0, not -signum.
    """
    stopping = False
    forwarded: set[int] = set()
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            forwarded.add(signum)
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    pause = first_pause_s
    while True:
        started = time.monotonic()
        child = subprocess.Popen(list(command), preexec_fn=die_with_parent)
        code = child.wait()
        if stopping or code == 0:
            return 0 if -code in forwarded else code
        if time.monotonic() - started > STEADY_S:
            pause = first_pause_s
        log.error("%s worker exited; restarting", name, extra={"exit_code": code, "pause_s": pause})
        deadline = time.monotonic() + pause
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return code
        pause = min(pause * 2, LONGEST_PAUSE_S)
