"""Result records: computed once, kept in the store, committed as JSON + npz, rendered alone."""

import json
import types

import pytest
import torch

from nrf import records
from nrf.options import Option

CALLS = []


def run(cfg, progress=True):
    CALLS.append(cfg)
    return {"results": {"acc": cfg["n"] / 10, "curve": torch.tensor([0.5, float("nan")]), "by_class": {1: 2}},
            "tensors": {"delta": torch.full((2, 3, 4, 4), cfg["n"], dtype=torch.float32)},
            "data": {"identity": "toy", "n_train": 3}}


TOY = types.SimpleNamespace(OPTIONS=[Option("n", {"smoke": 1, "medium": 2, "paper": 2}, "a number", kind="int", low=0)],
                            run=run, verdicts=lambda rec: [])


@pytest.fixture()
def toy(monkeypatch, tmp_path):
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("NRF_RECORDS", raising=False)
    monkeypatch.setattr(records, "section", lambda name: TOY)
    CALLS.clear()
    return tmp_path


def test_computed_once_then_from_the_store(toy):
    rec = records.get("toy", {"n": 3})
    assert rec["results"] == {"acc": 0.3, "curve": [0.5, None], "by_class": {"1": 2}}  # plain JSON
    assert torch.equal(rec["tensors"]["delta"], torch.full((2, 3, 4, 4), 3.0))
    p = rec["provenance"]
    assert p["section"] == "toy" and p["profile"] == "smoke" and p["data"]["identity"] == "toy"
    assert p["threads"] >= 1 and p["hardware"] and p["created"] and "compute_seconds" in p
    assert rec["options"] == {"profile": "smoke", "n": 3}
    again = records.get("toy", {"n": 3.0})  # 3 and 3.0 are one option value
    assert len(CALLS) == 1 and again["results"] == rec["results"] and again["source"].startswith("store")


def test_committed_record_renders_without_computing(toy, monkeypatch):
    path = records.commit("toy", {"profile": "paper"})
    assert path == toy / "results" / "paper" / "toy.json" and path.with_suffix(".npz").exists()
    assert json.loads(path.read_text())["results"]["acc"] == 0.2  # diffable numbers
    CALLS.clear()
    monkeypatch.setenv("NRF_STORE", str(toy / "empty-store"))
    monkeypatch.setenv("NRF_RECORDS", "committed")
    rec = records.get("toy", {"profile": "paper"})
    assert not CALLS and rec["source"].startswith("committed") and rec["tensors"]["delta"].shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="no record of section toy"):
        records.get("toy", {"profile": "paper", "n": 5})  # other options: not committed, never computed
    monkeypatch.setenv("NRF_RECORDS", "fresh")
    assert records.get("toy", {"profile": "paper"})["source"].startswith("store") and len(CALLS) == 1
    monkeypatch.setenv("NRF_RECORDS", "sometimes")
    with pytest.raises(ValueError, match="NRF_RECORDS must be one of"):
        records.get("toy", {})


def test_tampered_tensors_are_detected(toy):
    path = records.commit("toy", {})
    blob = path.with_suffix(".npz").read_bytes()
    path.with_suffix(".npz").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ValueError, match="checksum"):
        records.load(path)


def test_records_are_small(toy, monkeypatch):
    big = types.SimpleNamespace(OPTIONS=TOY.OPTIONS, verdicts=TOY.verdicts,
                                run=lambda cfg, progress=True: {"results": {}, "tensors": {"w": torch.zeros(3_000_000)}})
    monkeypatch.setattr(records, "section", lambda name: big)
    with pytest.raises(ValueError, match="MiB of tensors"):
        records.get("big", {})


def test_bad_options_fail_before_computing(toy):
    with pytest.raises(ValueError, match="unknown option 'm'"):
        records.get("toy", {"m": 1})
    with pytest.raises(ValueError, match="option n must be an integer >= 0"):
        records.get("toy", {"n": -1})
    assert not CALLS


def test_unknown_section():
    with pytest.raises(ValueError, match="section must be one of"):
        records.section("no_such_page")


def test_a_recomputation_says_whether_it_agrees_with_the_committed_record(toy, monkeypatch):
    from nrf import claims, page

    def verdicts(rec):
        acc = rec["results"]["acc"]
        return [claims.Verdict(claim="toy accuracy", test="T", effect=100 * acc, spread=1.0, unit="points",
                               status="holds", criterion="-")]

    monkeypatch.setattr(TOY, "verdicts", verdicts)
    first = records.load(records.commit("toy", {}))
    assert "recomputation" not in first["provenance"] and page.recomputation(first["provenance"]) == ""
    monkeypatch.setenv("NRF_STORE", str(toy / "another-machine"))  # recomputed elsewhere: the same numbers
    p = records.load(records.commit("toy", {}))["provenance"]
    assert p["recomputation"]["claims"] == [{"claim": "toy accuracy", "before": "+10 ± 1 points",
                                             "after": "+10 ± 1 points", "differs": False}]
    assert "agrees" in page.recomputation(p) and page._agreement_word(p) == "agrees"
    monkeypatch.setenv("NRF_STORE", str(toy / "a-third-machine"))
    monkeypatch.setattr(TOY, "run", lambda cfg, progress=True: {**run(cfg), "results": {"acc": 0.2}})  # moved 10 s.e.
    p = records.load(records.commit("toy", {}))["provenance"]
    assert p["recomputation"]["claims"][0]["differs"]
    assert "**Recomputed, and it differs" in page.recomputation(p) and "was +10 ± 1 points, now +20" in page.recomputation(p)
