"""Executing a page's notebook with parameters: here (`nrf run`), or as one point of a sweep in a
process of its own (`run_point`), which both executors run, local (nrf.sweep) and SLURM
(nrf.slurm). A point's folder `OUT/SECTION/<slug>-<hash>/` holds the executed notebook,
`log.txt` and, once it succeeded, `done.json`; its outcome is a mapping: params, status (done /
skipped / failed / cancelled / timeout), notebook, log, seconds, error.
"""

import fcntl
import functools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from nrf.processes import die_with_parent, interrupt
from nrf.runtime import write_atomic

BOOK = Path(__file__).resolve().parent.parent / "book"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def source(section: str, notebook: Path | None = None) -> Path:
    """The py:percent notebook of a section (or `notebook`, which replaces it in tests)."""
    if notebook is not None:
        if not Path(notebook).is_file():
            raise ValueError(f"notebook must be an existing py:percent file, got {str(notebook)!r}")
        return Path(notebook).resolve()
    path = BOOK / f"{section}.py"
    if not path.is_file():
        raise ValueError(f"section must be one of {sorted(f.stem for f in BOOK.glob('*.py'))}, got {section!r}")
    return path


def execute(
    section: str, params: dict, out: str | Path, *, notebook: Path | None = None, log: TextIO | None = None
) -> Path:
    """Execute a section's notebook with papermill into `out`, the kernel working in the
    notebook's folder; with `log`, the cells' output streams go there instead of a progress bar.
    The kernel talks over unix sockets in a temporary folder of its own, which also holds its
    connection file: TCP ports picked by kernels started at the same time can collide
    (nteract/papermill#511), and an interrupted run (Ctrl-C, SIGTERM) removes the one folder."""
    import jupytext
    import papermill
    from traitlets.config import Config

    path = source(section, notebook)
    logging.getLogger("papermill").addFilter(_KNOWN_TO_THE_PAGE)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nrf-kernel-") as sockets:
        try:
            papermill.execute_notebook(
                jupytext.read(path),
                str(out),
                parameters=params,
                cwd=str(path.parent),
                progress_bar=log is None,
                stdout_file=log,
                stderr_file=log,
                config=Config(
                    KernelManager={
                        "transport": "ipc",
                        "ip": f"{sockets}/kernel",
                        "connection_file": f"{sockets}/kernel.json",
                    }
                ),
            )
        except BaseException:
            _kill_kernel(sockets)
            raise
    return out


def _kill_kernel(sockets: str) -> None:
    """Kill the kernel whose connection file is in the folder `sockets`, if it still runs: papermill
    stops a kernel interrupted while it runs cells, not one interrupted while it starts, which
    would outlive its run and write a connection file of its own (Linux: read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if sockets in cmdline.read_bytes().decode(errors="replace"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except OSError:  # it ended meanwhile, or is not ours to read
            continue


class _KnownToThePage(logging.Filter):
    """Papermill warns about parameters its parameters cell does not list; a page lists only
    `profile` and checks every other name against its section's OPTIONS itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


_KNOWN_TO_THE_PAGE = _KnownToThePage()


def done(folder: Path) -> dict | None:
    """The point's done.json (params, seconds, finished) if it succeeded before, else None."""
    try:
        return json.loads((folder / "done.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def outcome(params: dict, folder: Path, section: str, status: str, seconds: float | None, error: str | None) -> dict:
    """What a sweep reports of one point (see the module's docstring)."""
    return {
        "params": params,
        "status": status,
        "notebook": folder / f"{section}.ipynb",
        "log": folder / "log.txt",
        "seconds": seconds,
        "error": error,
    }


def run_point(section: str, notebook: Path, params: dict, folder: Path, env: dict, popen=None) -> dict:
    """Execute one point in a subprocess (started by `popen`, default subprocess.Popen; a local sweep
    passes its own, to stop the points it started); its stdout and stderr become the point's log.
    The point folder is claimed first (a lock held while it runs), so two sweeps into one folder
    never run the same point; the subprocess dies with this process."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "claim", "a+") as claim:
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.seek(0)
            return outcome(
                params,
                folder,
                section,
                "failed",
                None,
                f"point is being run by another sweep ({claim.read().strip() or 'unknown process'})",
            )
        if (finished := done(folder)) is not None:  # finished by another sweep while this one queued it
            return outcome(params, folder, section, "skipped", finished.get("seconds"), None)
        claim.seek(0)
        claim.truncate()
        claim.write(f"pid {os.getpid()} on {socket.gethostname()}")
        claim.flush()
        job = {"section": section, "notebook": str(notebook), "params": params, "out": str(folder / f"{section}.ipynb")}
        start = time.perf_counter()
        with open(folder / "log.txt", "w") as log:
            code = (popen or subprocess.Popen)(
                [sys.executable, "-u", "-m", "nrf.notebooks", json.dumps(job)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            ).wait()
        seconds = round(time.perf_counter() - start, 2)
        if code != 0:
            text = ANSI.sub("", (folder / "log.txt").read_text(errors="replace"))
            lines = [ln for ln in text.splitlines() if ln.strip()]
            return outcome(params, folder, section, "failed", seconds, "\n".join(lines[-3:]) or f"exit code {code}")
        record = {"params": params, "seconds": seconds, "finished": datetime.now(UTC).isoformat(timespec="seconds")}
        write_atomic(folder / "done.json", json.dumps(record, indent=1).encode())
        return outcome(params, folder, section, "done", seconds, None)


def _child(job: str) -> None:
    """One point, in its own process: papermill's error (the cell's traceback) ends the log."""
    from papermill.exceptions import PapermillExecutionError

    signal.signal(signal.SIGTERM, interrupt)  # stopped by its sweep: clean up as on Ctrl-C
    job = json.loads(job)
    try:
        execute(job["section"], job["params"], job["out"], notebook=Path(job["notebook"]), log=sys.stdout)
    except PapermillExecutionError as e:
        sys.exit(ANSI.sub("", str(e)))
    except KeyboardInterrupt:
        sys.exit("stopped: the sweep was interrupted")


if __name__ == "__main__":
    _child(sys.argv[1])
