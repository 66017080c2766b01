"""Run one section's notebook over a grid of parameters: one papermill run per point, in parallel.

Every point runs in a process of its own (nrf.notebooks.run_point), so each worker can get its
own GPU (CUDA_VISIBLE_DEVICES) and thread count while the kernel inherits the rest of the
environment (NRF_STORE, ...), and a crashing point cannot take the others down. A point's
folder `OUT/SECTION/<slug>-<hash>/` holds the executed notebook, `log.txt` and, once it
succeeded, `done.json`: a sweep that is run again skips the points that are done. With
executor slurm the points run as one SLURM job array instead (nrf.slurm), into the same folders.
"""

import hashlib
import itertools
import json
import os
import queue
import re
import subprocess
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from nrf import contents, notebooks, records, runtime

EXECUTORS = ("local", "slurm")
OK = ("done", "skipped")  # the other statuses: failed, cancelled, timeout
LARGE_GRID = 1000  # points beyond which a sweep warns (the paper's full grid is 144)


def grid_points(grid: dict[str, list]) -> list[dict]:
    """The cartesian product of the grid: keys and values in the order given."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty mapping NAME -> list of values, got {grid!r}")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid parameter {name!r} must be a non-empty list of values, got {values!r}")
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


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
    return len(devices) or max(1, (os.cpu_count() or 1) // runtime.threads())


def check(section: str, every: list[dict]) -> list[str]:
    """Each point's parameters, checked against the section's options before anything runs, with
    the profile the notebook takes when none is given (records.default_profile); returns each
    point's profile (none for a notebook without a section module: it checks its parameters)."""
    if section not in contents.SECTIONS:
        return []
    module = contents.SECTIONS[section]
    default = records.default_profile(module)
    for params in every:
        records.resolve(module, {"profile": default, **params})
    return [params.get("profile", default) for params in every]


def warn_paper_on_cpu(profiles: list[str]) -> None:
    """The paper profile trains the paper's models (ResNet-18s of width 64, for 150 epochs): it is
    meant for a GPU, and a user who runs it on the CPU is told so."""
    if "paper" in profiles and runtime.default_device().type == "cpu":
        warnings.warn(
            "the paper profile on the CPU: it trains the paper's models, hours to days each here; "
            "it is meant for a GPU (NRF_DEVICE)",
            stacklevel=2,
        )


def run(
    section: str,
    grid: dict | None = None,
    *,
    points: list[dict] | None = None,
    fixed: dict | None = None,
    workers: int | None = None,
    out: str | Path | None = None,
    notebook: Path | None = None,
    executor: str = "local",
    slurm: dict | None = None,
) -> list[dict]:
    """Execute every point of `grid` (or the list `points`), each with the `fixed` parameters
    added, `workers` at a time: here (executor local, default_workers) or as one SLURM job array
    (executor slurm, nrf.slurm: `slurm` options partition, time_min, cpus, gpus, mem_gb, sbatch;
    default: every task at once). Returns each point's outcome (nrf.notebooks), in order: params,
    status (done / skipped / failed / cancelled / timeout), notebook, log, seconds, error. A
    progress bar counts the points (hidden inside runtime.quiet())."""
    path = notebooks.source(section, notebook)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if slurm is not None and executor != "slurm":
        raise ValueError("slurm options need executor slurm")
    if (grid is None) == (points is None):
        raise ValueError("give exactly one of grid and points")
    todo = grid_points(grid) if grid is not None else points
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
        warnings.warn(
            f"the grid has {len(every):,} points: each is a run of the {section} notebook "
            f"(the paper's full constructed-data grid is 144)",
            stacklevel=2,
        )
    root = Path(out or "runs/sweep").resolve() / section
    try:
        folders = [root / point_name(point, params) for point, params in zip(todo, every)]
    except TypeError as e:
        raise ValueError(f"parameters must be YAML/JSON values (numbers, strings, lists, mappings): {e}") from None
    if len(set(folders)) < len(folders):
        raise ValueError("points must be distinct: the grid or points list repeats a point")

    profiles = check(section, every) if notebook is None else []
    if executor == "slurm":
        from nrf import slurm as cluster  # submitit: only for this executor

        submit = cluster.parameters(slurm or {}, cluster.profile(section, every))
    outcomes, todo = [None] * len(every), []
    for i, (params, folder) in enumerate(zip(every, folders)):
        if (finished := notebooks.done(folder)) is not None:
            outcomes[i] = notebooks.outcome(params, folder, section, "skipped", finished.get("seconds"), None)
        else:
            todo.append((i, params, folder))
    if executor == "local":
        warn_paper_on_cpu(profiles)
        ending = _local(section, path, todo, workers)
    else:
        ending = cluster.execute(section, path, todo, root, submit, workers)
    bar = runtime.bar(total=len(every), desc=f"sweep {section}", unit="point")
    bar.update(len(every) - len(todo))
    try:
        for i, result in ending:
            outcomes[i] = result
            bar.set_postfix(failed=sum(o is not None and o["status"] not in OK for o in outcomes), refresh=False)
            bar.update()
    finally:
        ending.close()
        bar.close()
    return outcomes


def _local(section: str, notebook: Path, todo: list[tuple[int, dict, Path]], workers: int | None):
    """Run the points `todo` (index, parameters, folder) here, `workers` at a time (default_workers),
    and yield (index, outcome) as each ends; when the sweep stops (Ctrl-C, SIGTERM, an error), the
    points still running are stopped and those not started never start."""
    devices = gpus()
    workers = workers or default_workers(devices)
    slots = queue.Queue()
    for slot in range(workers):
        slots.put(slot)

    def one(params: dict, folder: Path) -> dict:
        slot = slots.get()
        try:
            return notebooks.run_point(section, notebook, params, folder, worker_env(slot, devices), running.popen)
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


def table(outcomes: list[dict]) -> str:
    """The sweep's outcome, one line per point: folder, status, seconds."""
    width = max(len(o["log"].parent.name) for o in outcomes)
    lines = [f"{'point':<{width}}  {'status':<9}  seconds"]
    for o in outcomes:
        seconds = "" if o["seconds"] is None else f"{o['seconds']:.1f}"
        lines.append(f"{o['log'].parent.name:<{width}}  {o['status']:<9}  {seconds:>7}")
    return "\n".join(lines)
