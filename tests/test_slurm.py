"""`nrf sweep --executor slurm` on a real SLURM cluster whose one node is this machine (.ci/slurm-up
starts one): results as the local executor's, skipping, cancelled, timed-out and failed tasks,
and a real section's point found afterwards by the pages' grid.

The notebook is a tiny py:percent file in tmp_path, as in test_sweep.py, whose `a` can also make
its task cancel itself, outlive its time limit or lose its process. Every test is bounded
(LIMIT): past it the sweep is interrupted, which cancels its jobs.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from test_section_constructed_training import TINY as POINT
from test_section_constructed_training import grid_of

from nrf import cli, constructed, grid, notebooks, records, slurm, sweep
from nrf.sections import constructed_training

LIMIT = 300  # seconds a test may take, jobs queued and run included
SMALL = {"cpus": 1, "mem_gb": 1, "time_min": 5}


def _cluster_here() -> str | None:
    """Why the tests cannot run here, or None: they need sbatch and a cluster whose node is this
    machine, since the jobs read and write the tests' tmp_path."""
    if shutil.which("sbatch") is None:
        return "no SLURM here (sbatch is not on PATH); .ci/slurm-up starts a single-node cluster"
    try:
        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the SLURM cluster does not answer (sinfo timed out)"
    if nodes.returncode != 0 or set(nodes.stdout.split()) != {socket.gethostname()}:
        return f"the SLURM cluster is not this one machine (sinfo: {(nodes.stdout + nodes.stderr).strip()!r})"
    return None


WHY_NOT = _cluster_here()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

NOTEBOOK = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
a = 1
b = 2
out = "."

# %%
import os
import pathlib
import signal
import subprocess
import time
if a == "cancel":  # the task cancels itself, as a user would with scancel
    subprocess.run(["scancel", f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"])
    time.sleep(60)
if a == "lost":  # the task's own process dies (as when the OOM killer takes it): kernel <- point <- task
    point = os.getppid()
    task = int(pathlib.Path(f"/proc/{point}/stat").read_text().rpartition(")")[2].split()[1])
    os.kill(task, signal.SIGKILL)
    time.sleep(60)
if a == "sleep":
    time.sleep(300)
if a == 3:
    raise ValueError(f"a is {a}")
pathlib.Path(out, f"a{a}_b{b}.txt").write_text(f"{a * b} {os.environ.get('NRF_THREADS')} {os.environ.get('NRF_STORE')}")
"""


@pytest.fixture(autouse=True)
def bounded():
    """The test fails after LIMIT seconds instead of hanging; the interrupted sweep cancels its jobs."""

    def expire(signum, frame):
        raise TimeoutError(f"a SLURM test ran past {LIMIT} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture()
def notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("NRF_THREADS", "1")
    path = tmp_path / "slurmtoy.py"
    path.write_text(NOTEBOOK)
    return path


def comparable(records: list[dict], root) -> list[dict]:
    """Records without what differs between two runs of a sweep: seconds, the sweep's folder."""
    return [
        {**r, "seconds": None, "notebook": r["notebook"].relative_to(root), "log": r["log"].relative_to(root)}
        for r in records
    ]


def test_slurm_as_local_then_only_what_is_not_done(notebook, tmp_path, monkeypatch, capsys):
    """One job array gives the local executor's records and outputs; a rerun (the command)
    resubmits only the failed point."""
    monkeypatch.setenv("NRF_STORE", "elsewhere")  # the jobs inherit the environment
    written = tmp_path / "written"
    written.mkdir()
    grid_, fixed = {"a": [1, 2, 3], "b": [5]}, {"out": str(written)}
    here = sweep.run("slurmtoy", grid_, fixed=fixed, workers=2, out=tmp_path / "local", notebook=notebook)
    outputs = {f.name: f.read_text() for f in written.iterdir()}
    for f in written.iterdir():
        f.unlink()
    there = sweep.run(
        "slurmtoy", grid_, fixed=fixed, out=tmp_path / "slurm", notebook=notebook, executor="slurm", slurm=SMALL
    )
    assert [r["status"] for r in there] == ["done", "done", "failed"], there
    assert "ValueError: a is 3" in there[2]["log"].read_text() and there[2]["error"].endswith("ValueError: a is 3")
    assert comparable(there, tmp_path / "slurm") == comparable(here, tmp_path / "local")
    assert (
        {f.name: f.read_text() for f in written.iterdir()}
        == outputs
        == {"a1_b5.txt": "5 1 elsewhere", "a2_b5.txt": "10 1 elsewhere"}
    )
    for r in there[:2]:
        assert json.loads((r["notebook"].parent / "done.json").read_text())["params"] == r["params"]

    submitted = []
    execute = slurm.execute

    def spy(section, notebook, todo, *args):
        submitted.extend(params for _, params, _ in todo)
        yield from execute(section, notebook, todo, *args)

    monkeypatch.setattr(slurm, "execute", spy)
    monkeypatch.setattr(notebooks, "BOOK", tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(
            [
                "sweep",
                "slurmtoy",
                "--grid",
                "a=1,2,3",
                "--grid",
                "b=5",
                "-p",
                "out",
                str(written),
                "--out",
                str(tmp_path / "slurm"),
                "--executor",
                "slurm",
                "--cpus",
                "1",
                "--mem",
                "1",
                "--time",
                "5",
            ]
        )
    assert e.value.code == 1
    assert submitted == [{"out": str(written), "a": 3, "b": 5}]
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 2 and "failed: " in printed and "ValueError: a is 3" in printed


def test_cancelled_and_lost_tasks_are_reported_as_such(notebook, tmp_path):
    records_ = sweep.run(
        "slurmtoy",
        {"a": ["cancel", "lost", 2]},
        fixed={"out": str(tmp_path)},
        out=tmp_path / "runs",
        notebook=notebook,
        executor="slurm",
        slurm=SMALL,
    )
    assert [r["status"] for r in records_] == ["cancelled", "failed", "done"], records_
    cancelled, lost = records_[0]["error"], records_[1]["error"]
    assert "CANCELLED" in cancelled and "its output: " in cancelled
    assert "FAILED" in lost and "its output: " in lost
    assert not (records_[0]["log"].parent / "done.json").exists() and (tmp_path / "a2_b2.txt").exists()


def test_what_sbatch_refuses_is_an_error(notebook, tmp_path):
    for options, match in (({"partition": "nosuch"}, "partition"), ({"gpus": 1}, "gres|gpu")):
        with pytest.raises(ValueError, match=f"sbatch refused the job array: .*({match})"):
            sweep.run(
                "slurmtoy", {"a": [1]}, out=tmp_path, notebook=notebook, executor="slurm", slurm={**SMALL, **options}
            )


STOPPED = """
import sys
from pathlib import Path
from nrf import cli, notebooks
notebooks.BOOK = Path(sys.argv[1])
cli.main(["sweep", "stopped", "--grid", "a=sleep", "--grid", "b=1,2", "--out", sys.argv[2], "--executor", "slurm",
          "--workers", "1", "--cpus", "1", "--mem", "1", "--time", "5"])
"""


def test_sigterm_cancels_the_queued_and_running_tasks(notebook, tmp_path):
    """SIGTERM to `nrf sweep --executor slurm` cancels its job array as Ctrl-C does: one task
    running, one queued (--workers 1), and nothing left to run later unattended."""
    shutil.copy(notebook, tmp_path / "stopped.py")

    def tasks() -> list[str]:
        out = subprocess.run(["squeue", "-h", "-n", "nrf-sweep-stopped", "-o", "%T"], capture_output=True, text=True)
        return out.stdout.split()

    assert tasks() == [], "an earlier run's tasks are still queued"
    sweep_ = subprocess.Popen(
        [sys.executable, "-c", STOPPED, str(tmp_path), str(tmp_path / "runs")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        while sorted(tasks()) != ["PENDING", "RUNNING"]:
            assert sweep_.poll() is None, sweep_.stderr.read()
            time.sleep(0.5)
        sweep_.send_signal(signal.SIGTERM)
        assert sweep_.wait(60) == 128 + signal.SIGTERM
        assert "nrf sweep: stopped (SIGTERM)" in sweep_.stderr.read()
        for _ in range(60):  # cancelled tasks leave the queue once their processes are gone
            if not tasks():
                break
            time.sleep(0.5)
        assert tasks() == []
    finally:
        sweep_.kill()
        subprocess.run(["scancel", "-n", "nrf-sweep-stopped"])


def test_timed_out_task_is_reported_as_such(notebook, tmp_path):
    """A two-minute limit, SLURM's warning (USR2, submitit's cue) due 50 s ahead: SLURM may send
    it up to a minute early, but not before the task has started."""
    records_ = sweep.run(
        "slurmtoy",
        {"a": ["sleep"]},
        out=tmp_path,
        notebook=notebook,
        executor="slurm",
        slurm={**SMALL, "time_min": 2, "sbatch": {"signal": "USR2@50"}},
    )
    assert [r["status"] for r in records_] == ["timeout"], records_
    assert "time limit" in records_[0]["error"] or "TIMEOUT" in records_[0]["error"]


def test_points_computed_on_slurm_are_found_by_the_pages(tiny, tmp_path, forbid, monkeypatch):
    """A real section's point, trained in a SLURM job, is read by a page's grid from the store."""
    monkeypatch.setenv("NRF_THREADS", "1")
    fixed = {**POINT, "profile": "smoke", "train_epochs": 1, "dataset": "adv", "decay": "none"}
    del fixed["train_lr"]
    done = sweep.run(
        "constructed_training",
        points=[{"train_lr": 0.04}],
        fixed=fixed,
        out=tmp_path,
        executor="slurm",
        slurm={**SMALL, "mem_gb": 4, "time_min": 10},
    )
    assert [d["status"] for d in done] == ["done"], done[0]["error"]
    forbid(grid.training, "train", "trained a point that the SLURM job stored")
    point = {**fixed, "train_lr": 0.04}
    record = records.get(constructed_training, point, mode="committed", progress=False)  # never computes
    assert record["source"].startswith("store") and record["results"]["lr"] == 0.04
    cat = constructed.Catalogue(grid_of(point)).build()
    row = grid.run(cat, ["adv"], grid_of(point))["points"][0]
    assert row["lr"] == 0.04 and row["final_acc"] == record["results"]["final_acc"]
