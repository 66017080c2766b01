"""`nrf sweep`: the grid, one papermill run per point in parallel, skipping, failures, the command;
the SLURM executor's options (its runs on a cluster: test_slurm.py).

The notebook is a tiny py:percent file in tmp_path (book sections are far too slow): it writes
a file named after its parameters into `out` (with two variables of its environment), and raises
when a == 3.
"""

import json
import os
import subprocess

import pytest

from nrf import cli, notebooks, slurm, sweep

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
if a == 3:
    raise ValueError(f"a is {a}")
pathlib.Path(out, f"a{a}_b{b}.txt").write_text(f"{a * b} {os.environ.get('NRF_THREADS')} {os.environ.get('NRF_STORE')}")
"""


@pytest.fixture()
def notebook(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(NOTEBOOK)
    (tmp_path / "written").mkdir()
    return path


def no_subprocess(*args, **kwargs):
    raise AssertionError("a point was executed")


def test_points():
    assert sweep.grid_points({"b": [2, 1], "a": ["x", [3]]}) == [
        {"b": 2, "a": "x"},
        {"b": 2, "a": [3]},
        {"b": 1, "a": "x"},
        {"b": 1, "a": [3]},
    ]
    with pytest.raises(ValueError, match="grid"):
        sweep.grid_points({})
    with pytest.raises(ValueError, match="'lr'"):
        sweep.grid_points({"a": [1], "lr": 0.1})
    with pytest.raises(ValueError, match="'lr'"):
        sweep.grid_points({"a": [1], "lr": []})


def test_run_fail_skip(notebook, tmp_path, monkeypatch):
    written, runs = tmp_path / "written", tmp_path / "runs"
    monkeypatch.setenv("NRF_THREADS", "1")
    monkeypatch.setenv("NRF_STORE", "elsewhere")  # the kernels inherit the environment
    records = sweep.run(
        "toy", {"a": [1, 2, 3], "b": [5]}, fixed={"out": str(written)}, workers=2, out=runs, notebook=notebook
    )
    assert [r["params"] for r in records] == [{"out": str(written), "a": a, "b": 5} for a in (1, 2, 3)]
    assert [r["status"] for r in records] == ["done", "done", "failed"]
    for r in records[:2]:
        assert r["notebook"].parent.parent == runs / "toy" and r["notebook"].is_file() and r["error"] is None
        assert json.loads((r["notebook"].parent / "done.json").read_text())["params"] == r["params"]
    assert sorted(f.read_text() for f in written.iterdir()) == ["10 1 elsewhere", "5 1 elsewhere"]
    failed = records[2]
    assert "ValueError: a is 3" in failed["log"].read_text() and failed["error"].endswith("ValueError: a is 3")
    assert not (failed["log"].parent / "done.json").exists()

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)  # done points are never executed again
    again = sweep.run(
        "toy", points=[{"a": 1, "b": 5}, {"a": 2, "b": 5}], fixed={"out": str(written)}, out=runs, notebook=notebook
    )
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    assert [r["seconds"] for r in again] == [r["seconds"] for r in records[:2]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"section": "no_such_section", "notebook": None}, "section"),
        ({"notebook": "missing.py"}, "notebook"),
        ({"workers": 0}, "workers"),
        ({"workers": 1.5}, "workers"),
        ({"grid": None}, "exactly one"),
        ({"points": [{"a": 1}]}, "exactly one"),
        ({"grid": {"a": 1}}, "'a'"),
        ({"fixed": {"a": 0}}, "'a'"),
        ({"grid": None, "points": [{"a": 1}, {"a": 1}]}, "distinct"),
        ({"fixed": {"f": object()}}, "YAML"),
        ({"executor": "dask"}, "executor"),
        ({"slurm": {"cpus": 1}}, "executor slurm"),
        ({"executor": "slurm", "slurm": {"gpu": 1}}, "'gpu'"),
        ({"executor": "slurm", "slurm": {"time_min": 0}}, "time_min"),
        ({"executor": "slurm", "slurm": {"gpus": 1.5}}, "gpus"),
        ({"executor": "slurm", "slurm": {"mem_gb": "lots"}}, "mem_gb"),
        ({"executor": "slurm", "slurm": {"partition": ""}}, "partition"),
        ({"executor": "slurm", "slurm": {"sbatch": ["qos=high"]}}, "sbatch"),
        ({"executor": "slurm", "fixed": {"profile": "huge"}}, "profile"),
    ],
)
def test_bad_arguments(notebook, tmp_path, monkeypatch, kwargs, match):
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)  # checked before anything runs
    call = {"section": "toy", "grid": {"a": [1, 2]}, "notebook": notebook, "out": tmp_path}
    with pytest.raises(ValueError, match=match):
        sweep.run(**{**call, **kwargs})


def test_worker_env(monkeypatch):
    """Each worker gets its own GPU (round robin) and computes at the same NRF_THREADS."""
    monkeypatch.setenv("NRF_THREADS", "2")
    env = sweep.worker_env(1, ["0", "3"])
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["NRF_THREADS"] == "2"
    assert sweep.worker_env(2, ["0", "3"])["CUDA_VISIBLE_DEVICES"] == "0"
    monkeypatch.setenv("NRF_DEVICE", "cuda:1")  # its one visible GPU is cuda:0 inside the worker
    assert sweep.worker_env(0, ["3"])["NRF_DEVICE"] == "cuda"
    monkeypatch.delenv("NRF_DEVICE")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in sweep.worker_env(0, [])
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert sweep.default_workers([]) == 8 and sweep.default_workers(["0", "1"]) == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert sweep.default_workers([]) == 1


def test_misspelled_parameter_fails_before_any_point_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    with pytest.raises(ValueError, match="unknown option 'wdith'.*did you mean 'width'"):
        sweep.run("models", {"epochs": [1, 2]}, fixed={"wdith": 4}, out=tmp_path)
    with pytest.raises(ValueError, match="option epochs must be an integer"):
        sweep.run("models", {"epochs": [1, "two"]}, out=tmp_path)


def test_grid_option_and_file(tmp_path):
    assert sweep.grid_option("lr=0.01,0.1") == ("lr", [0.01, 0.1])
    assert sweep.grid_option("norm=l2,linf") == ("norm", ["l2", "linf"])
    assert sweep.grid_option("K=[1, 2]") == ("K", [1, 2])
    assert sweep.grid_option("milestones=[[50, 75], [100]]") == ("milestones", [[50, 75], [100]])
    with pytest.raises(ValueError, match="--grid"):
        sweep.grid_option("lr")
    (tmp_path / "g.yaml").write_text("lr: [0.1]\nfixed:\n  profile: smoke\n")
    assert sweep.grid_file(tmp_path / "g.yaml") == ({"lr": [0.1]}, {"profile": "smoke"})


def test_cli(notebook, tmp_path, monkeypatch, capsys):
    """--grid-file and --grid together, -p over the file's fixed values, default out, exit 1 on failure."""
    monkeypatch.setattr(notebooks, "BOOK", tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.yaml").write_text("a: [1, 3]\nfixed:\n  out: nowhere\n")
    with pytest.raises(SystemExit) as e:
        cli.main(
            [
                "sweep",
                "toy",
                "--grid-file",
                "grid.yaml",
                "--grid",
                "b=4",
                "-p",
                "out",
                str(tmp_path / "written"),
                "--workers",
                "2",
            ]
        )
    assert e.value.code == 1
    assert (tmp_path / "written" / "a1_b4.txt").read_text().split()[0] == "4"
    printed = capsys.readouterr().out
    assert "done" in printed and "failed" in printed and "ValueError: a is 3" in printed
    assert str(tmp_path / "runs" / "sweep" / "toy") in printed  # the failed point's log


def test_slurm_options(monkeypatch):
    """Defaults from the points' profile (a GPU per point beyond smoke), CPUs from NRF_THREADS."""
    monkeypatch.setenv("NRF_THREADS", "3")
    assert slurm.parameters({}, "paper") == {
        "timeout_min": 1440,
        "cpus_per_task": 3,
        "gpus_per_node": 1,
        "mem_gb": 32,
        "slurm_additional_parameters": {},
    }
    assert slurm.parameters(
        {"partition": "gpu", "time_min": 30, "cpus": 4, "gpus": 2, "mem_gb": 2.5, "sbatch": {"account": "nrf"}}, "smoke"
    ) == {
        "timeout_min": 30,
        "cpus_per_task": 4,
        "gpus_per_node": 2,
        "mem_gb": 2.5,
        "slurm_additional_parameters": {"account": "nrf"},
        "slurm_partition": "gpu",
    }
    assert slurm.profile("toy", [{"profile": "smoke"}, {"profile": "paper"}, {"profile": "medium"}]) == "paper"
    monkeypatch.setenv("NRF_PROFILE", "medium")  # a toy notebook's default
    assert slurm.profile("toy", [{"profile": "smoke"}, {}]) == "medium"
    assert slurm.sbatch_option("--qos=high") == ("qos", "high")
    with pytest.raises(ValueError, match="--sbatch"):
        slurm.sbatch_option("exclusive")


def test_cli_slurm_errors(notebook, tmp_path, monkeypatch, capsys):
    """SLURM options without the SLURM executor, and that executor without sbatch: exit 2."""
    monkeypatch.setattr(notebooks, "BOOK", tmp_path)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    for args, match in ([["--gpus", "0"], "need --executor slurm"], [["--executor", "slurm"], "sbatch on PATH"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["sweep", "toy", "--grid", "a=1", "--out", str(tmp_path), *args])
        assert e.value.code == 2 and match in capsys.readouterr().err


def test_slurm_executor_names_its_extra(notebook, tmp_path, monkeypatch, capsys):
    """submitit is an extra (pip install 'nrf[slurm]'): without it, --executor slurm is a one-line
    error naming the extra, before anything runs."""
    import sys

    monkeypatch.setattr(notebooks, "BOOK", tmp_path)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed
    with pytest.raises(SystemExit) as e:
        cli.main(["sweep", "toy", "--grid", "a=1", "--out", str(tmp_path), "--executor", "slurm"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "pip install 'nrf[slurm]'" in err and len(err.strip().splitlines()) == 1


def test_cli_bad_grid(notebook, tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks, "BOOK", tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(["sweep", "toy", "--grid", "lr"])
    assert e.value.code == 2


SLOW = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
a = 1

# %%
import time
time.sleep(60)
"""

SWEEP = """
import sys
from pathlib import Path
from nrf import sweep
sweep.run("slow", {"a": [1]}, out=sys.argv[2], notebook=Path(sys.argv[1]))
"""


def test_points_die_with_the_sweep_and_are_claimed_by_one_sweep(tmp_path):
    import signal
    import sys
    import time

    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "tmp").mkdir()
    parent = subprocess.Popen(
        [sys.executable, "-c", SWEEP, str(tmp_path / "slow.py"), str(tmp_path / "runs")],
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )
    folder = None
    for _ in range(300):  # until the point runs its notebook
        logs = list((tmp_path / "runs" / "slow").glob("*/log.txt"))
        if logs and (logs[0].parent / "claim").read_text():
            folder = logs[0].parent
            break
        time.sleep(0.1)
    assert folder is not None, "the point never started"
    other = sweep.run("slow", {"a": [1]}, out=tmp_path / "runs", notebook=tmp_path / "slow.py")
    assert other[0]["status"] == "failed" and "being run by another sweep (pid" in other[0]["error"]

    for _ in range(300):  # the point's own process, running the notebook
        points = subprocess.run(["pgrep", "-f", "-P", str(parent.pid), "nrf.notebooks"], capture_output=True, text=True)
        if points.stdout.split():
            break
        time.sleep(0.1)
    point = int(points.stdout.split()[0])
    for _ in range(300):  # until the point's kernel runs
        if subprocess.run(["pgrep", "-P", str(point), "-f", "ipykernel"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(point, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the point's process outlived the killed sweep")
    assert not (folder / "done.json").exists()
    assert list((tmp_path / "tmp").iterdir()) == []  # the point removed its kernel's files as it stopped
