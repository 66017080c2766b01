"""What a hostile or careless user types (issue 22): one line, not a traceback; the warnings a
user expects; the CLI's one rule for a default profile and for relative data paths; and
commands stopped by SIGTERM (as by Ctrl-C) leave no process and no temporary file behind.

The stopped commands run a toy notebook (book sections are far too slow) or a stand-in for
their child process, in a subprocess of their own, with TMPDIR a fresh folder that must end empty.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nrf import cli, contents, notebooks, page, records, store, sweep

# ---- one line, not a traceback -----------------------------------------------------------------

# (environment, argv, what the one line says): each exits 2 before anything computes or runs.
ONE_LINE = [
    ({}, ["options", "__init__"], "section must be one of"),
    ({}, ["compute", "__init__"], "section must be one of"),
    ({}, ["options", "../models"], "section must be one of"),
    ({}, ["compute", "transfer", "-p", "seed", "1e20"], "option seed must be an integer"),
    ({}, ["compute", "gallery", "-p", "image_seed", "1e30"], "option image_seed must be an integer"),
    ({}, ["compute", "models", "-p", "width", "100000"], "option width must be an integer in [1, 512]"),
    ({}, ["compute", "leakage", "-p", "model_width", "100000"], "option model_width must be an integer in [1, 512]"),
    ({"NRF_PROFILE": "bogus"}, ["run", "models"], "NRF_PROFILE must be one of"),
    ({"NRF_PROFILE": "bogus"}, ["compute", "models"], "NRF_PROFILE must be one of"),
    ({"NRF_PROFILE": "bogus"}, ["sweep", "models", "--grid", "epochs=1,2"], "NRF_PROFILE must be one of"),
    ({"NRF_THREADS": "many"}, ["options", "models"], "NRF_THREADS must be a positive integer"),
    ({}, ["run", "models", "--output", "/dev/null/models.ipynb"], "--output /dev/null/models.ipynb: cannot create"),
]


@pytest.mark.parametrize("env, argv, says", ONE_LINE, ids=[" ".join(a) for _, a, _ in ONE_LINE])
def test_one_line_error(env, argv, says, capsys, monkeypatch, forbid, bare):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forbid(records, "compute", "computed with a bad input")
    forbid(notebooks, "execute", "ran a notebook with a bad input")
    forbid(subprocess, "Popen", "started a process with a bad input")
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err, err
    assert "Traceback" not in err and err.count("\n") == 1, err


def test_a_closed_pipe_is_no_traceback(monkeypatch):
    """`nrf options SECTION | head -1`: the reader went away, the command ends quietly."""
    read, write = os.pipe()
    os.close(read)
    with open(write, "w", buffering=1) as out:  # line-buffered: the first line meets the closed pipe
        monkeypatch.setattr(sys, "stdout", out)
        with pytest.raises(SystemExit) as e:
            cli.main(["options", "models"])
    assert e.value.code == 128 + signal.SIGPIPE


# ---- the CLI's rules ---------------------------------------------------------------------------


def test_compute_takes_the_pages_default_profile(bare, monkeypatch, capsys):
    """`nrf compute` without -p profile computes the profile the page shows (records.default_profile:
    NRF_PROFILE, else medium where committed), not always smoke."""
    asked = []

    def spy(name, params, **kwargs):
        asked.append(params["profile"])
        raise ValueError("spied")

    monkeypatch.setattr(records, "get", spy)
    for profile in (None, "smoke", "medium"):
        if profile:
            monkeypatch.setenv("NRF_PROFILE", profile)
        with pytest.raises(SystemExit):
            cli.main(["compute", "models"])
        assert asked[-1] == records.default_profile(contents.SECTIONS["models"]) == (profile or asked[-1])
    assert asked[0] == "medium"  # committed: what the page shows
    with pytest.raises(SystemExit):
        cli.main(["compute", "models", "-p", "profile", "smoke"])  # -p wins
    assert asked[-1] == "smoke"


def test_relative_data_paths_are_the_users(tmp_path, monkeypatch):
    """-p data, --params, --grid and --grid-file paths are relative to where the command was typed
    (a notebook runs in book/)."""
    got = {}

    def spy(section, grid, *, fixed, **kwargs):
        got.update(grid=grid, fixed=fixed)
        return []

    monkeypatch.setattr(sweep, "run", spy)
    monkeypatch.setattr(sweep, "table", lambda records: "")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.yaml").write_text("width: [4]\ndata: [d/c, cifar10]\n")
    cli.main(["sweep", "models", "--grid", "data=a.tar.gz,sample,b", "--grid", "epochs=1"])
    assert got["grid"]["data"] == [str(tmp_path / "a.tar.gz"), "sample", str(tmp_path / "b")]
    cli.main(["sweep", "models", "--grid-file", "g.yaml"])
    assert got["grid"]["data"] == [str(tmp_path / "d" / "c"), "cifar10"]
    (tmp_path / "p.yaml").write_text("data: e\n")
    cli.main(["sweep", "models", "--grid", "epochs=1", "--params", "p.yaml"])
    assert got["fixed"]["data"] == str(tmp_path / "e")
    (tmp_path / "f.yaml").write_text("epochs: [1]\nfixed:\n  data: f\n")
    cli.main(["sweep", "models", "--grid-file", "f.yaml"])
    assert got["fixed"]["data"] == str(tmp_path / "f")


def test_output_folder(tmp_path, monkeypatch, capsys):
    """`nrf run SECTION --output FOLDER` writes FOLDER/SECTION.ipynb."""
    (tmp_path / "toy.py").write_text(NOTEBOOK.format(seconds=0))
    monkeypatch.setattr(notebooks, "BOOK", tmp_path)
    (tmp_path / "out").mkdir()
    cli.main(["run", "toy", "--output", str(tmp_path / "out")])
    assert (tmp_path / "out" / "toy.ipynb").is_file()
    cli.main(["run", "toy", "--output", str(tmp_path / "new") + os.sep])
    assert (tmp_path / "new" / "toy.ipynb").is_file()
    assert "wrote " + str(tmp_path / "new" / "toy.ipynb") in capsys.readouterr().out


# ---- warnings a user expects -------------------------------------------------------------------


def test_more_threads_than_cores_warns(monkeypatch, capsys):
    monkeypatch.setenv("NRF_THREADS", str(len(os.sched_getaffinity(0)) + 1))
    cli.main(["options", "models"])
    err = capsys.readouterr().err
    assert "warning: NRF_THREADS=" in err and "cores" in err and err.count("\n") == 1, err
    monkeypatch.setenv("NRF_THREADS", "1")
    cli.main(["options", "models"])
    assert capsys.readouterr().err == ""


def test_paper_profile_on_a_cpu_warns(monkeypatch, capsys):
    monkeypatch.setenv("NRF_DEVICE", "cpu")
    monkeypatch.setattr(records, "get", lambda *a, **k: (_ for _ in ()).throw(ValueError("spied")))
    for profile, warned in (("paper", True), ("smoke", False)):
        with pytest.raises(SystemExit):
            cli.main(["compute", "models", "-p", "profile", profile])
        err = capsys.readouterr().err
        assert ("warning: the paper profile on the CPU" in err) == warned, err


def test_a_huge_grid_warns(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "_local", lambda *args: (r for r in ()))  # run nothing
    with pytest.warns(UserWarning, match="10,000 points"):
        sweep.run("toy", {"a": list(range(100)), "b": list(range(100))}, out=tmp_path, notebook=_toy(tmp_path))


# ---- a page with fewer models than its claims need ---------------------------------------------


def test_models_page_with_one_role(bare, monkeypatch):
    """`nrf run models -p roles '[natural]'`: no claim to decide, and the page still renders."""
    monkeypatch.setenv("NRF_RESULTS", str(bare / "results"))
    rec = records.load(store.REPO / "results" / "smoke" / "models.json")
    rec["options"]["roles"] = ["natural"]
    rec["results"]["models"] = {"natural": rec["results"]["models"]["natural"]}
    records.save(rec, bare / "results" / "smoke" / "models.json")
    assert page.verdict_frame([]).empty
    notebooks.execute(
        "models", {"profile": "smoke", "roles": ["natural"]}, bare / "models.ipynb", log=open(bare / "log.txt", "w")
    )


# ---- stopped by SIGTERM as by Ctrl-C -----------------------------------------------------------

NOTEBOOK = """# ---
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
time.sleep({seconds})
"""


def _toy(folder: Path, seconds: int = 0) -> Path:
    path = folder / "toy.py"
    path.write_text(NOTEBOOK.format(seconds=seconds))
    return path


def children(pid: int, pattern: str = "") -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid), *(["-f", pattern] if pattern else [])], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def wait_for(what: str, find, seconds: float = 120):
    """find()'s first truthy answer, polled; fail naming `what` after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if found := find():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} never happened")


def gone(pid: int) -> bool:
    """The process has exited (a zombie has exited too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def stopped(command: list[str], tmp_path: Path, started, env: dict | None = None) -> tuple[int, str, list[int]]:
    """Run `command` (python code and its arguments) with TMPDIR a fresh folder; once started()
    names its processes, SIGTERM it. Returns its exit code, its stderr and those processes."""
    (tmp_path / "tmp").mkdir()
    with open(tmp_path / "stderr.txt", "w") as err:
        parent = subprocess.Popen(
            [sys.executable, "-c", *command],
            stderr=err,
            env={
                **os.environ,
                "TMPDIR": str(tmp_path / "tmp"),
                "NRF_STORE": str(tmp_path / "store"),
                "NRF_RESULTS": str(tmp_path / "results"),
                "NRF_THREADS": "1",
                **(env or {}),
            },
        )
        try:
            processes = wait_for("the command's start", lambda: started(parent.pid))
            parent.send_signal(signal.SIGTERM)
            code = parent.wait(timeout=60)
        finally:
            parent.kill()
    try:
        for pid in processes:
            wait_for(f"the exit of process {pid}", lambda: gone(pid), 30)  # noqa: B023 (called before pid moves on)
    finally:  # a failed test leaves nothing running either
        for pid in processes:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    return code, (tmp_path / "stderr.txt").read_text(), processes


def kernel_of(parent: int) -> list[int]:
    """The Jupyter kernel that `parent` started, once it runs the notebook's cells."""
    return children(parent, "ipykernel")


RUN = """
import sys
from pathlib import Path
from nrf import cli, notebooks
notebooks.BOOK = Path(sys.argv[1])
cli.main(["run", "toy", "--output", sys.argv[2]])
"""


def test_sigterm_stops_nrf_run_and_cleans_up(tmp_path):
    _toy(tmp_path, seconds=120)
    code, err, _ = stopped([RUN, str(tmp_path), str(tmp_path / "toy.ipynb")], tmp_path, kernel_of)
    assert code == 128 + signal.SIGTERM and "nrf run: stopped (SIGTERM)" in err, err
    assert list((tmp_path / "tmp").iterdir()) == []  # no nrf-kernel-* folder, no kernel json


SWEEP = """
import sys
from pathlib import Path
from nrf import cli, notebooks
notebooks.BOOK = Path(sys.argv[1])
cli.main(["sweep", "toy", "--grid", "a=1,2,3", "--workers", "2", "--out", sys.argv[2]])
"""


def test_sigterm_stops_a_local_sweep_and_its_points(tmp_path):
    """Its points' processes and their kernels stop, the temporary files go, nothing is done."""
    _toy(tmp_path, seconds=120)

    def points_running(parent):
        points = children(parent, "nrf.notebooks")
        kernels = [k for p in points for k in kernel_of(p)]
        return points + kernels if len(kernels) == 2 else None

    code, err, processes = stopped([SWEEP, str(tmp_path), str(tmp_path / "runs")], tmp_path, points_running)
    assert code == 128 + signal.SIGTERM and "nrf sweep: stopped (SIGTERM)" in err, err
    assert len(processes) == 4  # two points, two kernels: all gone
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not list((tmp_path / "runs").glob("toy/*/done.json"))


REPRODUCE = """
import sys
from nrf import cli
sys.executable = sys.argv[1]  # the stage's process: a stand-in that sleeps
cli.main(["reproduce", "smoke", "--stages", "transfer"])
"""


def test_sigterm_stops_reproduce_and_its_stage(tmp_path):
    stand_in = tmp_path / "python"
    stand_in.write_text("#!/bin/sh\nexec sleep 300\n")
    stand_in.chmod(0o755)
    code, err, stage = stopped([REPRODUCE, str(stand_in)], tmp_path, lambda parent: children(parent, "sleep"))
    assert code == 128 + signal.SIGTERM and "nrf reproduce: stopped (SIGTERM)" in err, err
    assert len(stage) == 1  # and it is gone (stopped() waited for it)
