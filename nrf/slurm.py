"""`nrf sweep --executor slurm`: a sweep's points as one SLURM job array, submitted by submitit.

Each array task runs its point exactly as a local worker does (notebooks.run_point: the claim,
the point's subprocess, log.txt, done.json) on a node that shares the filesystem, so point folders,
store and records are the same whichever executor ran them. The sweep reads the tasks' states
from sacct (SLURM's accounting: without it a cancelled task could not be told from a pending
one) and reports cancelled, timed-out and failed tasks as such; the task's SLURM output
(submitit's logs) lies in OUT/SECTION/slurm/. submitit is an extra, needed by this executor only:
`pip install 'nrf[slurm]'`.
"""

import contextlib
import io
import os
import shutil
import subprocess
import time
from pathlib import Path

from nrf import contents, notebooks, records, runtime
from nrf.options import PROFILES

# Per profile: smoke and medium points are sized for CPU cores, paper points train on a GPU each.
DEFAULTS = {
    "smoke": {"gpus": 0, "time_min": 60, "mem_gb": 8},
    "medium": {"gpus": 0, "time_min": 4 * 60, "mem_gb": 16},
    "paper": {"gpus": 1, "time_min": 24 * 60, "mem_gb": 32},
}
OPTIONS = ("partition", "time_min", "cpus", "gpus", "mem_gb", "sbatch")
GRACE = 60  # seconds a task's result may wait for sacct to say the task ended


def profile(section: str, every: list[dict]) -> str:
    """The most demanding profile the points run at (theirs, else their notebook's default): it
    sets the default resources."""
    if all("profile" in p for p in every):
        default = None
    elif section not in contents.SECTIONS:  # a notebook of its own (tests)
        default = os.environ.get("NRF_PROFILE", "smoke")
    else:
        default = records.default_profile(contents.SECTIONS[section])
    named = {p.get("profile", default) for p in every}
    if unknown := sorted(map(str, named - set(PROFILES))):
        raise ValueError(f"option profile must be one of {list(PROFILES)}, got {unknown[0]!r}")
    return max(named, key=PROFILES.index)


def parameters(options: dict, profile: str) -> dict:
    """submitit's parameters for `options` (partition, time_min, cpus, gpus, mem_gb, sbatch: a
    mapping of extra sbatch options), checked; what is not given comes from DEFAULTS[profile], and
    cpus from NRF_THREADS, the thread count a point computes at. Without submitit, a one-line error
    before anything runs."""
    _submitit()
    if unknown := sorted(set(options) - set(OPTIONS)):
        raise ValueError(f"slurm option {unknown[0]!r} is unknown; the options are {list(OPTIONS)}")
    o = {**DEFAULTS[profile], "cpus": runtime.threads(), **{k: v for k, v in options.items() if v is not None}}
    for name, low in (("time_min", 1), ("cpus", 1), ("gpus", 0)):
        if isinstance(o[name], bool) or not isinstance(o[name], int) or o[name] < low:
            raise ValueError(f"slurm option {name} must be an integer >= {low}, got {o[name]!r}")
    if isinstance(o["mem_gb"], bool) or not isinstance(o["mem_gb"], (int, float)) or not o["mem_gb"] > 0:
        raise ValueError(f"slurm option mem_gb must be a positive number, got {o['mem_gb']!r}")
    if "partition" in o and (not isinstance(o["partition"], str) or not o["partition"]):
        raise ValueError(f"slurm option partition must be a partition's name, got {o['partition']!r}")
    extra = o.get("sbatch", {})
    if not isinstance(extra, dict) or not all(isinstance(k, str) and k for k in extra):
        raise ValueError(f"slurm option sbatch must be a mapping sbatch option -> value, got {extra!r}")
    return {
        "timeout_min": o["time_min"],
        "cpus_per_task": o["cpus"],
        "gpus_per_node": o["gpus"],
        "mem_gb": o["mem_gb"],
        "slurm_additional_parameters": extra,
        **({"slurm_partition": o["partition"]} if "partition" in o else {}),
    }


def sbatch_option(text: str) -> tuple[str, str]:
    """`--sbatch NAME=VALUE`: an sbatch option without its dashes, e.g. account=myproject."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().lstrip("-") or not value.strip():
        raise ValueError(f"--sbatch must look like NAME=VALUE (an sbatch option: account=myproject), got {text!r}")
    return name.strip().lstrip("-"), value.strip()


def _submitit():
    """The submitit package, or a one-line error naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise ValueError("executor slurm needs submitit, an extra of nrf: pip install 'nrf[slurm]'") from None
    return submitit


def execute(
    section: str, notebook: Path, todo: list[tuple[int, dict, Path]], root: Path, params: dict, parallelism: int | None
):
    """Submit the points `todo` (index, parameters, folder) as one job array with submitit
    `params`, at most `parallelism` tasks at once (default: all), and yield (index, outcome) as
    each task ends. Tasks still queued or running when the sweep stops (Ctrl-C) are cancelled."""
    submitit = _submitit()
    from submitit.core.utils import FailedJobError

    if not todo:
        return
    if shutil.which("sbatch") is None:
        raise ValueError("executor slurm needs SLURM's sbatch on PATH (run the sweep on the cluster's login node)")
    accounting = subprocess.run(["sacct", "-n", "-X", "-S", "now", "-o", "JobID"], capture_output=True, text=True)
    if accounting.returncode != 0:  # a cancelled task would look pending forever
        raise ValueError(f"executor slurm needs SLURM's accounting (sacct): {accounting.stderr.strip()}")
    executor = submitit.AutoExecutor(folder=root / "slurm" / "%j", cluster="slurm")
    executor.update_parameters(name=f"nrf-sweep-{section}", slurm_array_parallelism=parallelism or len(todo), **params)
    indices, every, folders = zip(*todo)
    try:  # submitit also prints sbatch's complaint: it is in the error instead
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(_task, [section] * len(todo), [notebook] * len(todo), every, folders)
    except FailedJobError as e:  # sbatch refused the array: a partition, a resource or an option it does not know
        raise ValueError(f"sbatch refused the job array: {e}") from None
    for job in jobs:
        job.watcher.register_job(job.job_id)
    pending = dict(zip(jobs, zip(indices, every, folders)))
    results = {}  # job -> when its result appeared
    start = time.monotonic()
    try:
        while pending:
            jobs[0].watcher.update()  # one sacct call for the whole array
            now = time.monotonic()
            for job in list(pending):
                if job.paths.result_pickle.exists():
                    results.setdefault(job, now)
                # ended: sacct says so (its state tells a cancelled task from one that failed), or
                # its result has been there for a while (sacct lagging behind: never a hang)
                if job.watcher.is_done(job.job_id, mode="cache") or now - results.get(job, now) > GRACE:
                    index, point, folder = pending.pop(job)
                    yield index, _outcome(job, section, point, folder)
            if pending:
                time.sleep(min(60.0, 2 + (now - start) / 20))  # sacct every 2 s at first, then less
    finally:
        if pending:
            subprocess.call(["scancel", *(j.job_id for j in pending)])


def _task(section: str, notebook: Path, params: dict, folder: Path) -> dict:
    """One point, as a task of the array: with the GPUs SLURM gave the task. submitit raises
    UncompletedJobError when SLURM signals the time limit ahead (USR2): the point stops there."""
    from submitit.core.utils import UncompletedJobError

    try:
        return notebooks.run_point(section, notebook, params, folder, dict(os.environ))
    except UncompletedJobError:
        return notebooks.outcome(
            params,
            folder,
            section,
            "timeout",
            None,
            f"SLURM job {os.environ.get('SLURM_JOB_ID')} reached its time limit (--time)",
        )


def _outcome(job, section: str, params: dict, folder: Path) -> dict:
    """The outcome of an ended task. SLURM's state comes first: a cancelled or timed-out task's
    point may have returned an outcome of its own (the point's subprocess killed by the signal).
    Then the point's outcome (done, failed, timeout), else what SLURM says of a task that never
    returned one (failed, out of memory, node lost)."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    state = job.state  # e.g. COMPLETED, CANCELLED by 0, TIMEOUT, OUT_OF_MEMORY
    where = f"SLURM job {job.job_id} {state}; its output: {job.paths.stdout}"
    for status, prefix in (("cancelled", "CANCELLED"), ("timeout", "TIMEOUT")):
        if state.startswith(prefix):
            return notebooks.outcome(params, folder, section, status, None, where)
    try:
        return job.result()
    except (FailedJobError, UncompletedJobError) as e:
        text = str(e).split("You can check full logs")[0]  # submitit's pointer to the output named in `where`
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("-" * 10)]
        return notebooks.outcome(params, folder, section, "failed", None, "\n".join([where, *lines[-2:]]))
