"""nrf reproduce: stages in order, each in its own process, committed ones skipped, a table."""

import json

import pytest
from conftest import TINY

from nrf import contents, records, reproduce, zoo

PARAMS = {**TINY, "roles": ["natural"]}


def test_reproduce_computes_then_resumes(tmp_path, monkeypatch, session_store):
    monkeypatch.setenv("NRF_STORE", str(session_store))
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    rows = reproduce.run("smoke", sections=("models",), params=PARAMS)
    assert [r["stage"] for r in rows] == ["models: natural", "models"]  # each model trains in a process of its own
    assert all(r["status"] == "computed" and r["seconds"] > 0 and r["peak_memory_mib"] > 50 for r in rows)
    rec = records.load(tmp_path / "results" / "smoke" / "models.json")
    assert rec["options"]["roles"] == ["natural"] and rec["provenance"]["code"]
    report = json.loads((tmp_path / "results" / "smoke" / "reproduce.json").read_text())
    assert report["stages"] == rows
    again = reproduce.run("smoke", sections=("models",), params=PARAMS)
    assert [r["status"] for r in again] == ["committed"]  # same options, same code: not redone
    assert again[0]["seconds"] == rows[-1]["seconds"]  # the seconds of the run that computed it
    assert "models" in reproduce.table(again)
    redone = reproduce.run("smoke", sections=("models",), params=PARAMS, recompute=True)
    assert [r["status"] for r in redone] == ["computed", "computed"]
    check = records.load(tmp_path / "results" / "smoke" / "models.json")["provenance"]["recomputation"]
    assert check["against"]["created"] == rec["provenance"]["created"]
    assert not any(c["differs"] for c in check["claims"])  # same store: the same numbers


def test_reproduce_checks_options_first(tmp_path, monkeypatch):
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    with pytest.raises(ValueError, match="unknown option 'wdith'"):
        reproduce.run("smoke", sections=("models",), params={"wdith": 4})
    with pytest.raises(ValueError, match="option width must be"):
        reproduce.run("smoke", sections=("models",), params={"width": 0})
    assert not (tmp_path / "results").exists()


def test_reproduce_stages_and_budget(tmp_path, monkeypatch, session_store):
    """--stages runs a subset and keeps the other stages' rows; --budget stops the running stage
    (nothing committed) and starts no later one; the same command without it then computes."""
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))  # nothing trained yet: the stage takes seconds
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    earlier = {"stage": "gallery", "status": "computed", "seconds": 12.0, "peak_memory_mib": 900}
    (folder / "reproduce.json").write_text(json.dumps({"stages": [earlier]}))
    with pytest.raises(ValueError, match="unknown stage 'galery'"):
        reproduce.run("smoke", sections=("galery",))
    with pytest.raises(ValueError, match="budget must be a positive number"):
        reproduce.run("smoke", sections=("models",), params=PARAMS, budget=0)
    rows = reproduce.run("smoke", sections=("gallery", "models"), params=PARAMS, budget=1)
    assert [r["status"] for r in rows] == ["stopped at the budget"]  # the book's order: models first
    assert rows[0]["stage"] == "models: natural" and not (folder / "models.json").exists()
    table = json.loads((folder / "reproduce.json").read_text())["stages"]
    assert [r["stage"] for r in table] == ["models: natural", "gallery"] and table[1] == earlier
    monkeypatch.setenv("NRF_STORE", str(session_store))
    rows = reproduce.run("smoke", sections=("models",), params=PARAMS)
    assert [r["status"] for r in rows] == ["computed", "computed"] and (folder / "models.json").exists()
    table = [r["stage"] for r in json.loads((folder / "reproduce.json").read_text())["stages"]]
    assert table == ["models: natural", "models", "gallery"]


def test_models_stage_is_one_process_per_model():
    """A GPU window is short: the models stage trains each model alone, then writes the record."""
    parts = reproduce.parts("models", {"profile": "paper"})
    assert [label for label, _, _ in parts] == [f"models: {role}" for role in zoo.ROLES] + ["models"]
    assert [save for _, _, save in parts] == [False] * len(zoo.ROLES) + [True]
    assert parts[2][1] == {"profile": "paper", "roles": [zoo.ROLES[2]]}
    assert reproduce.parts("gallery", {"profile": "paper"}) == [("gallery", {"profile": "paper"}, True)]


def test_a_committed_record_that_fails_its_check_is_recomputed(tmp_path, monkeypatch):
    """A corrupt committed .npz is not "committed": reproduce computes the stage again and
    replaces the record (the stage's process is stood in for by an in-process publish)."""
    from types import SimpleNamespace

    import torch

    from nrf.options import Option

    def run(cfg):
        return {"results": {"n": cfg["n"]}, "tensors": {"delta": torch.ones(3)}, "data": {"identity": "toy"}}

    toy = SimpleNamespace(
        __name__="nrf.sections.locality",
        OPTIONS=[Option("n", 1, "a number", kind="int")],
        run=run,
        verdicts=lambda rec: [],
    )
    monkeypatch.setitem(contents.PAGES, "locality", toy)
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))

    def stage(name, params, *rest):
        records.publish(contents.PAGES[name], params, progress=False)
        return {"stage": name, "status": "computed", "seconds": 1.0, "peak_memory_mib": 1, "peak_gpu_mib": None}

    monkeypatch.setattr(reproduce, "_stage", stage)
    assert [r["status"] for r in reproduce.run("smoke", sections=("locality",))] == ["computed"]
    assert [r["status"] for r in reproduce.run("smoke", sections=("locality",))] == ["committed"]
    npz = tmp_path / "results" / "smoke" / "locality.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    assert [r["status"] for r in reproduce.run("smoke", sections=("locality",))] == ["computed"]
    assert torch.equal(records.load(npz.with_suffix(".json"))["tensors"]["delta"], torch.ones(3))


def test_two_runs_of_other_stages_keep_each_others_rows(tmp_path, monkeypatch):
    """Two `nrf reproduce --stages` side by side (one thread each on a 2-core machine) each write
    the stage table after every process: neither may drop the rows the other wrote meanwhile."""
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    (tmp_path / "results" / "medium").mkdir(parents=True)
    row = {"status": "computed", "seconds": 5.0, "peak_memory_mib": 900}
    reproduce._write("medium", [{**row, "stage": "uap"}])  # run A, started first
    reproduce._write("medium", [{**row, "stage": "constructed"}])  # run B: it never saw A's row
    reproduce._write("medium", [{**row, "stage": "uap"}, {**row, "stage": "uap_analysis"}])  # A again
    table = json.loads((tmp_path / "results" / "medium" / "reproduce.json").read_text())["stages"]
    assert [r["stage"] for r in table] == ["constructed", "uap", "uap_analysis"]  # the book's order
