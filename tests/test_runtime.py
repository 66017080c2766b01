import os

import pytest
import torch

from nrf import cli, runtime
from nrf.store import REPO


@pytest.mark.parametrize(
    "value",
    ["bogus", "mps", "meta", "cuda:7", "cuda"]
    if not torch.cuda.is_available()
    else ["bogus", "mps", "meta", "cuda:99"],
)
def test_bad_device_is_one_line_naming_the_variable(value, monkeypatch, capsys):
    monkeypatch.setenv("NRF_DEVICE", value)
    with pytest.raises(ValueError, match="NRF_DEVICE"):
        runtime.default_device()
    with pytest.raises(SystemExit) as e:
        cli.main(["compute", "models", "-p", "width", "4"])
    assert e.value.code == 2 and "NRF_DEVICE" in capsys.readouterr().err


def test_cpu_device(monkeypatch):
    monkeypatch.setenv("NRF_DEVICE", "cpu")
    assert runtime.default_device() == torch.device("cpu")


def test_cpu_hardware_names_the_cpu_and_the_threads_used(monkeypatch):
    monkeypatch.setenv("NRF_DEVICE", "cpu")
    name = runtime.cpu_name()
    assert name and "\n" not in name
    assert (
        runtime.hardware() == f"CPU ({name}, {runtime.threads()} of {os.cpu_count()} cores), torch {torch.__version__}"
    )


def test_write_atomic(tmp_path):
    path = runtime.write_atomic(tmp_path / "a" / "b.bin", b"123")
    assert path.read_bytes() == b"123" and [p.name for p in path.parent.iterdir()] == ["b.bin"]
    assert path.stat().st_mode & 0o644 == 0o644  # readable by others (umask 022), like any shared cache
    runtime.write_atomic(path, lambda f: f.write(b"45"))
    assert path.read_bytes() == b"45"
    with pytest.raises(ZeroDivisionError):
        runtime.write_atomic(path, lambda f: 1 / 0)
    assert path.read_bytes() == b"45" and len(list(path.parent.iterdir())) == 1  # no torn file, no leftover


def test_cli_rejects_repeated_and_unknown_parameters(capsys):
    for argv, words in (
        (["compute", "models", "-p", "width", "4", "-p", "width", "8"], "given twice"),
        (["compute", "models", "-p", "wdith", "4"], "did you mean 'width'"),
        (["run", "models", "-p", "wdith", "4"], "did you mean 'width'"),
        (["compute", "models", "-p", "lr", "nan"], "option lr must be a finite number"),
        (["compute", "models", "-p", "lr", "[1"], "not a YAML value"),
    ):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and "Traceback" not in err, argv


def test_cli_paths_are_the_users(tmp_path, monkeypatch):
    """A relative NRF_STORE or data path means the same under nrf run (kernel in book/) as here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NRF_STORE", "relstore")
    seen = {}
    monkeypatch.setattr("nrf.notebooks.execute", lambda section, params, out: seen.update(params) or out)
    cli.main(["run", "models", "-p", "data", "mydata", "-p", "width", "4"])
    assert os.environ["NRF_STORE"] == str(tmp_path / "relstore") and seen["data"] == str(tmp_path / "mydata")


def test_cli_params_file(tmp_path, monkeypatch, capsys):
    """--params FILE sets options in one go (the paper's full grid is grids/paper-full.yaml); -p wins;
    a file that is no mapping, or names an unknown option, is a one-line error."""
    seen = {}
    monkeypatch.setattr("nrf.notebooks.execute", lambda section, params, out: seen.update(params) or out)
    full = str(REPO / "grids" / "paper-full.yaml")
    cli.main(["run", "generalisation", "--params", full, "-p", "profile", "paper", "-p", "train_epochs", "200"])
    assert seen == {
        "lrs": [0.01, 0.05, 0.1],
        "batch_sizes": [128, 256],
        "decays": ["none", "step"],
        "train_epochs": 200,
        "profile": "paper",
    }
    (tmp_path / "list.yaml").write_text("[1, 2]\n")
    (tmp_path / "bad.yaml").write_text("lrss: [0.1]\n")
    for argv, words in (
        (["compute", "models", "--params", str(tmp_path / "list.yaml")], "must hold a mapping"),
        (["compute", "models", "--params", str(tmp_path / "none.yaml")], "cannot read it"),
        (["run", "generalisation", "--params", str(tmp_path / "bad.yaml")], "did you mean 'lrs'"),
    ):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and "Traceback" not in err, argv
