"""`nrf reproduce PROFILE`: every record of the book, computed in order and written to results/.

Each section is one stage, run in its own process (`nrf compute SECTION --save`) so that its
peak memory is its own; the models stage first trains each model in a process of its own, so
that no process outlasts the longest training (a GPU window is short). A stage whose committed
record was computed with the same options by the same code is skipped, so a run killed at any
point resumes where it stopped, on any machine that has the committed records; inside a stage
the artifact store resumes (trained models, checkpoints). The table of stages (seconds, peak
memory) is written to results/PROFILE/reproduce.json, and the book's first page shows it.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import contents, records, runtime, store
from .processes import die_with_parent

STOP_GRACE = 30  # seconds a stopped stage's process has to clean up before it is killed


def run(
    profile: str,
    sections=tuple(contents.PAGES),
    params: dict | None = None,
    recompute: bool = False,
    budget: float | None = None,
) -> list[dict]:
    """Compute every stage of `profile` not yet committed; returns (and writes) the stage table.
    params: options given to every section that declares them. recompute: compute the stages
    whose committed record is current too; each new record then says whether its effects agree
    with the committed one's within their spread (records.agreement), and the book shows it.
    sections: a subset runs only those stages (in the book's order); the table keeps the others'
    rows from the earlier run. budget: seconds for the whole run (a GPU window): no stage starts
    after it, and the stage running when it ends is stopped; its training resumes from its last
    checkpoint in the store (at most 5 minutes old) when the run is repeated on this machine. A
    progress bar counts the stages (hidden inside runtime.quiet())."""
    unknown = [name for name in sections if name not in contents.PAGES]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}: the stages are {list(contents.PAGES)}")
    sections = [name for name in contents.PAGES if name in sections]
    params = params or {}
    declared = {name: {o.name for o in contents.PAGES[name].OPTIONS} for name in sections}
    for key in params:
        if not any(key in names for names in declared.values()):
            raise ValueError(f"unknown option {key!r}: no section of {list(sections)} has it")
    own = {name: {"profile": profile, **{k: v for k, v in params.items() if k in declared[name]}} for name in sections}
    for name in sections:  # every value checked before anything computes
        records.resolve(contents.PAGES[name], own[name])
    if budget is not None and not budget > 0:
        raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
    records.require_clean(profile)  # before hours of compute, not after
    deadline = None if budget is None else time.monotonic() + budget
    earlier = {r["stage"]: r for r in _report(profile).get("stages", []) if r["seconds"] is not None}
    rows = []
    for name in runtime.bar(sections, desc=f"reproduce {profile}", unit="stage"):
        # computed before: keep its seconds from the run that did it
        if not recompute and records.current(contents.PAGES[name], own[name]):
            rows.append(
                {**earlier.get(name, {"seconds": None, "peak_memory_mib": None}), "stage": name, "status": "committed"}
            )
            continue
        for label, part, save in parts(name, own[name]):
            if deadline is not None and time.monotonic() >= deadline:
                break  # the budget is spent: the rest is for the next run
            rows.append(_stage(name, part, deadline, label, save))
            _write(profile, rows)  # after every process: a run killed later keeps its seconds
            if rows[-1]["status"] != "computed":
                break  # later stages may depend on this one's artifacts: stop, keep what landed
        else:
            continue  # every process of the stage computed: on to the next
        break
    _write(profile, rows)
    return rows


def parts(name: str, params: dict) -> list[tuple[str, dict, bool]]:
    """The processes of one stage, (row label, options, save the record): the models stage
    trains one model per process ("models: robust"), then writes its record from the store."""
    if name != "models":
        return [(name, params, True)]
    roles = records.resolve(contents.PAGES[name], params)["roles"]
    return [(f"models: {role}", {**params, "roles": [role]}, False) for role in roles] + [(name, params, True)]


def _stage(name: str, params: dict, deadline: float | None, label: str, save: bool) -> dict:
    """One stage in its own process (`nrf compute NAME [--save]`), stopped at `deadline`: its
    row of the table (named `label`), with the process's peak memory and, on a GPU, the device's.
    Stopped itself (Ctrl-C, SIGTERM: nrf.processes.interrupt), it stops the stage's process and waits
    for it; killed, the stage's process gets SIGTERM from the kernel (die_with_parent)."""
    argv = [sys.executable, "-m", "nrf.cli", "compute", name] + (["--save"] if save else [])
    for key, value in params.items():
        argv += ["-p", key, json.dumps(value)]
    with tempfile.TemporaryDirectory() as tmp:
        gpu_file = Path(tmp) / "gpu.json"
        start = time.perf_counter()
        child = subprocess.Popen(
            argv,
            env={**os.environ, "NRF_RECORDS": "fresh", "NRF_GPU_PEAK_FILE": str(gpu_file)},
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
        stopped = False
        try:
            while True:  # poll, so that the deadline can stop the stage
                pid, status, usage = os.wait4(child.pid, os.WNOHANG if deadline is not None else 0)
                if pid:
                    break
                if time.monotonic() >= deadline and not stopped:
                    child.terminate()
                    stopped = True
                time.sleep(0.5)
        except BaseException:  # this process is stopping: so does the stage's, cleaning up first
            child.terminate()
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
        code = os.waitstatus_to_exitcode(status)
        child.returncode = code  # reaped by wait4: tell Popen so it does not wait again
        gpu = json.loads(gpu_file.read_text())["peak_gpu_mib"] if gpu_file.exists() else None
    status = "stopped at the budget" if stopped else "computed" if code == 0 else f"failed (exit {code})"
    return {
        "stage": label,
        "status": status,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_memory_mib": round(usage.ru_maxrss / 1024),
        "peak_gpu_mib": gpu,
    }


def _report(profile: str) -> dict:
    path = store.results_root() / profile / "reproduce.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write(profile: str, rows: list[dict]) -> None:
    """The stage table: this run's rows, and the table's other rows as they are now on disk (an
    earlier run's, or those of a run of other stages going on beside this one)."""
    on_disk = {r["stage"]: r for r in _report(profile).get("stages", []) if r["seconds"] is not None}
    by_stage = {**on_disk, **{r["stage"]: r for r in rows}}
    order = {name: i for i, name in enumerate(contents.PAGES)}  # the book's order; a stage's own row after its parts
    stages = sorted(
        (r for r in by_stage.values() if r["stage"].split(":")[0] in order),
        key=lambda r: (order[r["stage"].split(":")[0]], ":" not in r["stage"]),
    )
    report = {
        "profile": profile,
        "hardware": runtime.hardware(),
        "commit": store.git_commit(),
        "finished": store.now(),
        "stages": stages,
    }
    runtime.write_atomic(
        store.results_root() / profile / "reproduce.json", (json.dumps(report, indent=1) + "\n").encode()
    )


def table(rows: list[dict]) -> str:
    """The stage table as text: stage, status, seconds, peak memory."""
    lines = [f"{'stage':<16}{'status':<24}{'seconds':>9}{'peak MiB':>10}{'GPU MiB':>9}"]
    for r in rows:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
        memory = "" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']}"
        gpu = "" if r.get("peak_gpu_mib") is None else f"{r['peak_gpu_mib']}"
        lines.append(f"{r['stage']:<16}{r['status']:<24}{seconds:>9}{memory:>10}{gpu:>9}")
    total = sum(r["seconds"] or 0 for r in rows)
    return "\n".join(lines + [f"{'total':<40}{total:>9.0f}"])
