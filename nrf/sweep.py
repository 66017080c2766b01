"""Run one section's notebook over a grid of parameters: one papermill run per point, in parallel.

Every point runs in its own `python -m nrf.sweep` subprocess, so each worker can get its own
GPU (CUDA_VISIBLE_DEVICES) and thread count while the kernel inherits the rest of the
environment (NRF_STORE, ...), and a crashing point cannot take the others down. A point's
folder `OUT/SECTION/<slug>-<hash>/` holds the executed notebook, `log.txt` and, once it
succeeded, `done.json`: a sweep that is run again skips the points that are done. With
executor slurm the points run as one SLURM job array instead (nrf.slurm), into the same folders.
"""

import ctypes
import ctypes.util
import fcntl
import functools
import hashlib
import importlib.util
import itertools
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import yaml

from nrf.runtime import write_atomic
from tqdm.auto import tqdm

BOOK = Path(__file__).resolve().parent.parent / "book"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXECUTORS = ("local", "slurm")
OK = ("done", "skipped")  # the other statuses: failed, cancelled, timeout
LARGE_GRID = 1000  # points beyond which a sweep warns (the paper's full grid is 144)


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


def execute(section: str, params: dict, out: str | Path, *, notebook: Path | None = None,
            log: TextIO | None = None) -> Path:
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
            papermill.execute_notebook(jupytext.read(path), str(out), parameters=params, cwd=str(path.parent),
                                       progress_bar=log is None, stdout_file=log, stderr_file=log,
                                       config=Config(KernelManager={"transport": "ipc", "ip": f"{sockets}/kernel",
                                                                    "connection_file": f"{sockets}/kernel.json"}))
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


def points(grid: dict[str, list]) -> list[dict]:
    """The cartesian product of the grid: keys and values in the order given."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty mapping NAME -> list of values, got {grid!r}")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid parameter {name!r} must be a non-empty list of values, got {values!r}")
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


_points = points  # run()'s keyword argument `points` hides the function inside run()


def grid_option(text: str) -> tuple[str, list]:
    """`--grid NAME=V1,V2,...` (each value read as YAML) or `NAME=[YAML list]`, which allows
    values that are lists or contain commas: `--grid "milestones=[[50, 75], [100]]"`."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ValueError(f"--grid must look like NAME=V1,V2,... or NAME=[V1, V2], got {text!r}")
    if values.lstrip().startswith("["):
        return name.strip(), _yaml(values, f"--grid {text}")
    return name.strip(), [_yaml(v, f"--grid {text}") for v in values.split(",")]


def _yaml(text: str, where: str):
    """YAML text read, or a one-line error naming where it came from."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None


def grid_file(path: str | Path) -> tuple[dict, dict]:
    """A YAML mapping NAME -> list of values, plus an optional `fixed:` mapping -> (grid, fixed)."""
    spec = _yaml(Path(path).read_text(), f"grid file {path}")
    if not isinstance(spec, dict):
        raise ValueError(f"grid file {path} must hold a mapping NAME -> list of values")
    fixed = spec.pop("fixed", None) or {}
    if not isinstance(fixed, dict):
        raise ValueError(f"grid file {path}: fixed must be a mapping NAME -> value, got {fixed!r}")
    return spec, fixed


def point_name(point: dict, params: dict) -> str:
    """A readable folder name: the point's own values, then a hash of all its parameters."""
    slug = "_".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in point.items())
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "-", slug).strip("-")[:48]
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def gpus() -> list[str]:
    """The CUDA devices the workers share out: none when NRF_DEVICE asks for the CPU, only its
    GPU when NRF_DEVICE=cuda:N, else every visible one."""
    wanted = os.environ.get("NRF_DEVICE", "")
    if wanted.startswith("cpu"):
        return []
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = ([d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(count)])[:count]
    if wanted.startswith("cuda:"):
        index = int(wanted.partition(":")[2])
        if index >= len(ids):
            raise ValueError(f"NRF_DEVICE={wanted} asks for a CUDA GPU but torch sees {len(ids)}")
        return [ids[index]]
    return ids


def worker_env(slot: int, devices: list[str]) -> dict:
    """Worker `slot`'s environment: its own GPU (round robin). Every worker computes at the same
    NRF_THREADS as a run in one process would, so both give the same numbers (store keys)."""
    env = dict(os.environ)
    if devices:  # the worker sees one GPU, as cuda:0
        env["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]
        if env.get("NRF_DEVICE", "").startswith("cuda"):
            env["NRF_DEVICE"] = "cuda"
    return env


def default_workers(devices: list[str]) -> int:
    """One worker per GPU; on the CPU as many as the cores hold at NRF_THREADS threads each."""
    from nrf.runtime import threads

    return len(devices) or max(1, (os.cpu_count() or 1) // threads())


def check(section: str, every: list[dict]) -> list[str]:
    """Each point's parameters, checked against the section's options before anything runs, with
    the profile the notebook takes when none is given (records.default_profile); returns each
    point's profile (none for a notebook without a section module: it checks its parameters)."""
    if importlib.util.find_spec(f"nrf.sections.{section}") is None:
        return []
    from nrf import records

    default = records.default_profile(section)
    for params in every:
        records.resolve(section, {"profile": default, **params})
    return [params.get("profile", default) for params in every]


def warn_paper_on_cpu(profiles: list[str]) -> None:
    """The paper profile trains the paper's models (ResNet-18s of width 64, for 150 epochs): it is
    meant for a GPU, and a user who runs it on the CPU is told so."""
    from nrf.runtime import default_device

    if "paper" in profiles and default_device().type == "cpu":
        warnings.warn("the paper profile on the CPU: it trains the paper's models, hours to days each here; "
                      "it is meant for a GPU (NRF_DEVICE)")


def _done(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "done.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _record(params: dict, folder: Path, section: str, status: str, seconds: float | None, error: str | None) -> dict:
    return {"params": params, "status": status, "notebook": folder / f"{section}.ipynb", "log": folder / "log.txt",
            "seconds": seconds, "error": error}


def _point(section: str, notebook: Path, params: dict, folder: Path, env: dict,
           running: "_Running | None" = None) -> dict:
    """Execute one point in a subprocess; its stdout and stderr become the point's log. The point
    folder is claimed first (a lock held while it runs), so two sweeps into one folder never run
    the same point; the subprocess dies with this process, and `running` can stop it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "claim", "a+") as claim:
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.seek(0)
            return _record(params, folder, section, "failed", None,
                           f"point is being run by another sweep ({claim.read().strip() or 'unknown process'})")
        if (done := _done(folder)) is not None:  # finished by another sweep while this one queued it
            return _record(params, folder, section, "skipped", done.get("seconds"), None)
        claim.seek(0)
        claim.truncate()
        claim.write(f"pid {os.getpid()} on {socket.gethostname()}")
        claim.flush()
        job = {"section": section, "notebook": str(notebook), "params": params, "out": str(folder / f"{section}.ipynb")}
        start = time.perf_counter()
        with open(folder / "log.txt", "w") as log:
            code = (running.popen if running else subprocess.Popen)(
                [sys.executable, "-u", "-m", "nrf.sweep", json.dumps(job)], env=env, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=functools.partial(die_with_parent, os.getpid())).wait()
        seconds = round(time.perf_counter() - start, 2)
        if code != 0:
            text = ANSI.sub("", (folder / "log.txt").read_text(errors="replace"))
            lines = [ln for ln in text.splitlines() if ln.strip()]
            return _record(params, folder, section, "failed", seconds, "\n".join(lines[-3:]) or f"exit code {code}")
        done = {"params": params, "seconds": seconds,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_atomic(folder / "done.json", json.dumps(done, indent=1).encode())
        return _record(params, folder, section, "done", seconds, None)


def die_with_parent(parent: int) -> None:
    """In a child process (a sweep's point, a reproduce stage), before it starts: SIGTERM when the
    thread that started it dies (Linux), however it dies. The child cleans up on SIGTERM as on
    Ctrl-C (nrf.cli.interrupt); a point's kernel exits with the point."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the sweep died before prctl took effect
        os._exit(1)


def run(section: str, grid: dict | None = None, *, points: list[dict] | None = None, fixed: dict | None = None,
        workers: int | None = None, out: str | Path | None = None, progress: bool = True,
        notebook: Path | None = None, executor: str = "local", slurm: dict | None = None) -> list[dict]:
    """Execute every point of `grid` (or the list `points`), each with the `fixed` parameters
    added, `workers` at a time: here (executor local, default_workers) or as one SLURM job array
    (executor slurm, nrf.slurm: `slurm` options partition, time_min, cpus, gpus, mem_gb, sbatch;
    default: every task at once). Returns one record per point, in order: params, status (done /
    skipped / failed / cancelled / timeout), notebook, log, seconds, error."""
    path = source(section, notebook)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if slurm is not None and executor != "slurm":
        raise ValueError("slurm options need executor slurm")
    if (grid is None) == (points is None):
        raise ValueError("give exactly one of grid and points")
    todo = _points(grid) if grid is not None else points
    if not isinstance(todo, list) or not todo or not all(isinstance(p, dict) for p in todo):
        raise ValueError(f"points must be a non-empty list of mappings NAME -> value, got {todo!r}")
    fixed = {} if fixed is None else fixed
    if not isinstance(fixed, dict):
        raise ValueError(f"fixed must be a mapping NAME -> value, got {fixed!r}")
    for point in todo:
        if clash := sorted(set(point) & set(fixed)):
            raise ValueError(f"parameter {clash[0]!r} is both swept and fixed")
    every = [{**fixed, **point} for point in todo]
    if len(every) > LARGE_GRID:
        warnings.warn(f"the grid has {len(every):,} points: each is a run of the {section} notebook "
                      f"(the paper's full constructed-data grid is 144)")
    root = Path(out or "runs/sweep").resolve() / section
    try:
        folders = [root / point_name(point, params) for point, params in zip(todo, every)]
    except TypeError as e:
        raise ValueError(f"parameters must be YAML/JSON values (numbers, strings, lists, mappings): {e}") from None
    if len(set(folders)) < len(folders):
        raise ValueError("points must be distinct: the grid or points list repeats a point")

    profiles = check(section, every) if notebook is None else []
    if executor == "slurm":
        from nrf import slurm as cluster

        submit = cluster.parameters(slurm or {}, cluster.profile(section, every))
    records, todo = [None] * len(every), []
    for i, (params, folder) in enumerate(zip(every, folders)):
        if (done := _done(folder)) is not None:
            records[i] = _record(params, folder, section, "skipped", done.get("seconds"), None)
        else:
            todo.append((i, params, folder))
    if executor == "local":
        warn_paper_on_cpu(profiles)
        finished = _local(section, path, todo, workers)
    else:
        finished = cluster.execute(section, path, todo, root, submit, workers)
    bar = tqdm(total=len(every), disable=not progress, desc=f"sweep {section}", unit="point")
    bar.update(len(every) - len(todo))
    try:
        for i, record in finished:
            records[i] = record
            bar.set_postfix(failed=sum(r is not None and r["status"] not in OK for r in records), refresh=False)
            bar.update()
    finally:
        finished.close()
        bar.close()
    return records


def _local(section: str, notebook: Path, todo: list[tuple[int, dict, Path]], workers: int | None):
    """Run the points `todo` (index, parameters, folder) here, `workers` at a time (default_workers),
    and yield (index, record) as each ends; when the sweep stops (Ctrl-C, SIGTERM, an error), the
    points still running are stopped and those not started never start."""
    devices = gpus()
    workers = workers or default_workers(devices)
    slots = queue.Queue()
    for slot in range(workers):
        slots.put(slot)

    def one(params: dict, folder: Path) -> dict:
        slot = slots.get()
        try:
            return _point(section, notebook, params, folder, worker_env(slot, devices), running)
        finally:
            slots.put(slot)

    running = _Running()
    pool = ThreadPoolExecutor(workers)
    try:
        futures = {pool.submit(one, params, folder): i for i, params, folder in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        running.stop()
        pool.shutdown(cancel_futures=True)  # waits for the stopped points' processes to end


class _Running:
    """The processes of a local sweep's points: stop() sends each running one SIGTERM (a point
    then cleans up as on Ctrl-C: its kernel and temporary files) and lets no new one start."""

    def __init__(self):
        self.lock, self.processes, self.stopped = threading.Lock(), [], False

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self.lock:
            if self.stopped:
                raise RuntimeError("the sweep has stopped: no point starts")
            self.processes = [p for p in self.processes if p.poll() is None]
            self.processes.append(subprocess.Popen(*args, **kwargs))
            return self.processes[-1]

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for process in self.processes:
                process.terminate()  # Popen signals only a process it has not reaped


def table(records: list[dict]) -> str:
    """The sweep's outcome, one line per point: folder, status, seconds."""
    width = max(len(r["log"].parent.name) for r in records)
    lines = [f"{'point':<{width}}  {'status':<9}  seconds"]
    for r in records:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"{r['log'].parent.name:<{width}}  {r['status']:<9}  {seconds:>7}")
    return "\n".join(lines)


def _child(job: str) -> None:
    """One point, in its own process: papermill's error (the cell's traceback) ends the log."""
    from papermill.exceptions import PapermillExecutionError

    from nrf.cli import interrupt

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
