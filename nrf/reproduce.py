"""`nrf reproduce PROFILE`: every record of the book, computed in order and written to results/.

Each section is one stage, run in its own process (`nrf compute SECTION --save`) so that its
peak memory is its own. A stage whose committed record was computed with the same options by
the same code is skipped, so a run killed at any point resumes where it stopped, on any machine
that has the committed records; inside a stage the artifact store resumes (trained models,
checkpoints). The table of stages (seconds, peak memory) is written to
results/PROFILE/reproduce.json, and the book's first page shows it.
"""

import json
import os
import subprocess
import sys
import time

from tqdm.auto import tqdm

from . import records, runtime, store


def run(profile: str, sections=records.SECTIONS, params: dict | None = None, recompute: bool = False,
        progress: bool = True) -> list[dict]:
    """Compute every stage of `profile` not yet committed; returns (and writes) the stage table.
    params: options given to every section that declares them. recompute: compute the stages
    whose committed record is current too; each new record then says whether its effects agree
    with the committed one's within their spread (records.agreement), and the book shows it."""
    params = params or {}
    declared = {name: {o.name for o in records.section(name).OPTIONS} for name in sections}
    for key in params:
        if not any(key in names for names in declared.values()):
            raise ValueError(f"unknown option {key!r}: no section of {list(sections)} has it")
    own = {name: {"profile": profile, **{k: v for k, v in params.items() if k in declared[name]}} for name in sections}
    for name in sections:  # every value checked before anything computes
        records.resolve(name, own[name])
    earlier = {r["stage"]: r for r in _report(profile).get("stages", []) if r["seconds"] is not None}
    rows = []
    for name in tqdm(sections, desc=f"reproduce {profile}", unit="stage", disable=not progress):
        if not recompute and records.current(name, own[name]):  # computed before: keep its seconds from the run that did it
            rows.append({**earlier.get(name, {"seconds": None, "peak_memory_mib": None}),
                         "stage": name, "status": "committed"})
            continue
        argv = [sys.executable, "-m", "nrf.cli", "compute", name, "--save"]
        for key, value in own[name].items():
            argv += ["-p", key, json.dumps(value)]
        start = time.perf_counter()
        child = subprocess.Popen(argv, env={**os.environ, "NRF_RECORDS": "fresh"})
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        rows.append({"stage": name, "status": "computed" if child.returncode == 0 else f"failed (exit {child.returncode})",
                     "seconds": round(time.perf_counter() - start, 1), "peak_memory_mib": round(usage.ru_maxrss / 1024)})
        _write(profile, rows)  # after every stage: a run killed later keeps this one's seconds
        if child.returncode != 0:
            break  # later stages may depend on this one's artifacts: stop, keep what landed
    _write(profile, rows)
    return rows


def _report(profile: str) -> dict:
    path = store.results_root() / profile / "reproduce.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write(profile: str, rows: list[dict]) -> None:
    report = {"profile": profile, "hardware": runtime.hardware(), "commit": store.git_commit(), "finished": store.now(),
              "stages": rows}
    runtime.write_atomic(store.results_root() / profile / "reproduce.json",
                         (json.dumps(report, indent=1) + "\n").encode())


def table(rows: list[dict]) -> str:
    """The stage table as text: stage, status, seconds, peak memory."""
    lines = [f"{'stage':<16}{'status':<20}{'seconds':>9}{'peak MiB':>10}"]
    for r in rows:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
        memory = "" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']}"
        lines.append(f"{r['stage']:<16}{r['status']:<20}{seconds:>9}{memory:>10}")
    total = sum(r["seconds"] or 0 for r in rows)
    return "\n".join(lines + [f"{'total':<36}{total:>9.0f}"])
