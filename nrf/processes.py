"""Child processes (a sweep's points, `nrf reproduce`'s stages) that stop with their parent, and
commands that clean up when stopped: SIGTERM is handled as Ctrl-C is."""

import ctypes
import ctypes.util
import os
import signal


def interrupt(signum: int, frame) -> None:
    """SIGTERM's handler: raise KeyboardInterrupt, as Ctrl-C does, so that what a command cleans up
    when interrupted it cleans up when killed (its children stopped, its SLURM jobs cancelled, its
    kernel and temporary files removed); the exit status is then 128 + the signal's number."""
    raise KeyboardInterrupt(signum)


def die_with_parent(parent: int) -> None:
    """In a child process, before it starts (Popen's preexec_fn): SIGTERM when the thread that
    started it dies (Linux), however it dies. The child cleans up on SIGTERM as on Ctrl-C
    (`interrupt`); a point's kernel exits with the point."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
