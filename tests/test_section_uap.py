import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import algorithm1, attacks, records, uaps, zoo
from nrf.sections import uap

TINY = {
    **MODELS_TINY,
    "archs": ["natural", "vgg11"],
    "n_train": 8,
    "sizes": [4, 8],
    "compare_n": 4,
    "max_passes": 2,
    "uap_batch": 4,
    "n_eval": 40,
    "sweep_rms": [1.0],
    "sweep_deepfool": [4.0, 32.0],
    "sweep_n": 4,
    "sweep_passes": 1,
    "sweep_eval": 20,
    "deepfool_n": 8,
    "base_size": 16,
    "solver_epochs": 1,
    "solver_batch": 16,
}


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"norms": ["l3"]}, "norms"),
        ({"norms": "l2"}, "norms"),
        ({"norms": ["l2", "l2"]}, "norms"),
        ({"xi_l2": -1.0}, "xi_l2"),
        ({"xi_linf": 0}, "xi_linf"),
        ({"archs": ["resnet50"]}, "archs"),
        ({"archs": ["natural", "natural"]}, "archs"),
        ({"sizes": [0, 4]}, "sizes"),
        ({"sizes": [4, 4]}, "sizes"),
        ({"delta": 1.0}, "delta"),
        ({"max_passes": 0}, "max_passes"),
        ({"uap_batch": 2.5}, "uap_batch"),
        ({"n_eval": 0}, "n_eval"),
        ({"sweep_rms": [0.0]}, "sweep_rms"),
        ({"sweep_deepfool": "many"}, "sweep_deepfool"),
        ({"sweep_passes": 0}, "sweep_passes"),
        ({"width": -3}, "width"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_bad_options_fail_before_any_work(bad, name, tiny, forbid):
    forbid(zoo, "load_data", "loaded data for bad options")
    with pytest.raises(ValueError, match=name):
        records.get(uap, {**TINY, **bad})


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"n_train": 10**6}, "n_train"),
        ({"sizes": [4, 10**6]}, "sizes"),
        ({"compare_n": 10**6}, "compare_n"),
        ({"n_eval": 10**6}, "n_eval"),
        ({"sweep_n": 10**6}, "sweep_n"),
        ({"sweep_eval": 10**6}, "sweep_eval"),
        ({"deepfool_n": 21}, "deepfool_n"),  # more than sweep_eval's 20
        ({"base_size": 10**6}, "base_size"),
    ],
)
def test_sizes_beyond_the_data_fail_before_training(bad, name, tiny, forbid):
    forbid(zoo, "trained", "trained a model for bad options")
    with pytest.raises(ValueError, match=f"option {name}"):
        records.get(uap, {**TINY, **bad})


def test_record_is_well_formed_then_loads(tiny, forbid):
    rec = records.get(uap, TINY)
    r, t = rec["results"], rec["tensors"]
    archs, norms = TINY["archs"], ["l2", "linf"]
    assert r["archs"] == archs and r["norms"] == norms and r["n_eval"] == TINY["n_eval"]
    assert len(r["classes"]) == 10 and set(r["names"]) == set(archs)
    assert t["perturbations"].shape == (2, 2, 3, 32, 32)
    for i, role in enumerate(archs):
        assert 0 <= r["models"][role]["clean_acc"] <= 1
        for j, norm in enumerate(norms):
            v = t["perturbations"][i, j]
            size = v.norm() if norm == "l2" else v.abs().max()
            assert 0 < size <= r["xi"][norm] * (1 + 1e-4)
            row = r["fooling"][role][norm]
            assert all(0 <= row[k] <= 1 for k in ("train", "test", "chance"))
            assert 1 <= row["passes"] == len(row["history"]) <= TINY["max_passes"]
            counts = torch.tensor(r["dominant"][role][norm])
            assert counts.shape == (10, 10)
            assert counts.sum().item() == round(row["test"] * TINY["n_eval"])  # exactly the fooled images
    for norm in norms:
        m = torch.tensor(r["transfer"][norm])
        assert m.shape == (2, 2)
        assert torch.allclose(m.diagonal(), torch.tensor([r["fooling"][role][norm]["test"] for role in archs]))
    s = r["sizes"]
    assert s["n"] == [4, 8] and len(s["test"]) == len(s["train"]) == 2 and s["norm"] == "l2"
    assert s["test"][-1] == r["fooling"]["natural"]["l2"]["test"]  # the largest X is the T1 perturbation itself
    for kind in ("faithful", "batched"):
        c = r["compare"][kind]
        assert c["seconds"] > 0 and 0 <= c["test_fooling"] <= 1 and len(c["history"]) >= 1
    sw = r["sweep"]
    for role in archs:
        for norm in norms:
            c = sw["curves"][role][norm]
            assert c["median_deepfool"] > 0 and 0 < c["deepfool_success"] <= 1
            assert c["radii"] == sorted(c["radii"]) and len(c["radii"]) == 3  # 1 rms multiple, 2 DeepFool multiples
            assert sorted(zip(c["kind"], c["multiple"])) == [("deepfool", 4.0), ("deepfool", 32.0), ("rms", 1.0)]
            unit = uaps.yardstick(norm, r["pixels"])
            for radius, kind, m in zip(c["radii"], c["kind"], c["multiple"]):
                assert radius == pytest.approx(m * (unit if kind == "rms" else c["median_deepfool"]))
            assert all(0 <= p <= 1 for p in c["test"] + c["chance"] + c["train"])
            assert all(1 <= k <= TINY["sweep_passes"] for k in c["passes"])
        assert r["picked"]["xi"][norm] == uaps.picked(sw["curves"][archs[0]][norm])
        assert 0 <= sw["part1"][norm]["fooling"] <= 1 and 0 <= sw["part1"][norm]["target"] < 10
    assert sw["image_l2"] > 0 and sw["rule"] == uaps.RULE
    assert r["picked"]["norms"] == [n for n in norms if r["picked"]["xi"][n] is not None]
    found = uap.verdicts(rec)
    assert [v.test for v in found] == ["II-A1", "II-T1", "II-T2", "II-F3", "II-F4", "II-T1", "II-T2", "II-F3", "II-F4"]
    assert len({v.claim for v in found}) == len(found)  # the claims at the two radii are named apart

    forbid(records, "compute", "recomputed a stored record")
    again = records.get(uap, TINY)
    assert again["results"] == rec["results"]
    assert torch.equal(again["tensors"]["perturbations"], t["perturbations"])


def test_the_claims_run_again_at_the_picked_radius(tiny, monkeypatch):
    monkeypatch.setattr(uaps, "HALF", 0.0)  # every radius qualifies: the rule picks the sweep's smallest
    cfg = records.resolve(uap, TINY)
    r = uap.run(cfg)["results"]
    p, archs = r["picked"], TINY["archs"]
    for norm in ["l2", "linf"]:
        assert p["xi"][norm] == min(r["sweep"]["curves"]["natural"][norm]["radii"]) != r["xi"][norm]
        for role in archs:
            assert p["fooling"][role][norm]["test"] == p["transfer"][norm][archs.index(role)][archs.index(role)]
            assert 1 <= p["fooling"][role][norm]["passes"] <= TINY["max_passes"]
    assert p["norms"] == ["l2", "linf"] and p["sizes"]["n"] == [4, 8] and p["sizes"]["norm"] == "l2"
    found = [v for v in uap.verdicts({"results": r}) if v.claim.endswith(uap.AT_PICKED)]
    assert [v.test for v in found] == ["II-T1", "II-T2", "II-F3", "II-F4"]
    assert all(v.detail.startswith("at l2 xi ") and ", linf xi " in v.detail for v in found)


def test_run_again_loads_every_artifact(tiny, forbid):
    cfg = records.resolve(uap, TINY)
    first = uap.run(cfg)
    forbid(algorithm1, "uap", "recomputed a perturbation")
    forbid(attacks, "predict", "recomputed predictions")
    forbid(attacks, "classify", "recomputed predictions")
    again = uap.run(cfg)
    assert records.jsonable(again["results"]) == records.jsonable(first["results"])


# ---- verdicts on hand-made records -------------------------------------------------------------------


def hand_made(
    *,
    test=0.8,
    chance=0.02,
    transfer=0.6,
    sizes=(0.3, 0.8),
    faithful=0.8,
    batched=0.79,
    archs=("natural", "vgg11"),
    dominant="one",
    n_eval=1000,
    picked=True,
):
    archs, norms = list(archs), ["l2"]
    k = 10
    if dominant == "one":  # every fooled image goes to label 3 (class 3's to 4)
        counts = [[0 if i == j else (8 if j == (4 if i == 3 else 3) else 0) for j in range(k)] for i in range(k)]
    elif dominant == "even":
        counts = [[0 if i == j else 1 for j in range(k)] for i in range(k)]
    else:
        counts = [[0] * k for _ in range(k)]
    tests = test if isinstance(test, dict) else {role: test for role in archs}
    fooling = {
        role: {
            "l2": {
                "train": 0.9,
                "test": tests[role],
                "chance": chance,
                "passes": 2,
                "history": [0.5, 0.9],
                "seconds": 1.0,
            }
        }
        for role in archs
    }
    matrix = [[tests[s] if i == j else transfer for j, _ in enumerate(archs)] for i, s in enumerate(archs)]
    results = {
        "classes": [f"c{i}" for i in range(k)],
        "archs": archs,
        "norms": norms,
        "names": {role: role for role in archs},
        "n_train": 100,
        "n_train_total": 5000,
        "n_eval": n_eval,
        "fooling": fooling,
        "transfer": {"l2": matrix},
        "dominant": {role: {"l2": counts} for role in archs},
        "sizes": {
            "n": [25, 100][: len(sizes)],
            "norm": "l2",
            "role": archs[0],
            "test": list(sizes),
            "train": list(sizes),
            "chance": chance,
        },
        "compare": {
            "n": 50,
            "norm": "l2",
            "role": archs[0],
            "faithful": {"history": [faithful], "seconds": 4.0, "test_fooling": faithful},
            "batched": {"history": [batched], "seconds": 1.0, "test_fooling": batched},
        },
    }
    results["picked"] = {
        "xi": {"l2": 3.0 if picked else None},
        "norms": norms if picked else [],
        **{k: results[k] for k in ("fooling", "transfer", "dominant", "sizes")},
    }
    return {"results": results}


def statuses(rec, at_picked=False):
    """{test id: status} of the verdicts at the book's xi, or at the picked radius."""
    return {v.test: v.status for v in uap.verdicts(rec) if v.claim.endswith(uap.AT_PICKED) == at_picked}


def test_verdicts_at_the_picked_radius_name_it_or_cannot_be_tested():
    rec = hand_made()
    assert set(statuses(rec, at_picked=True).values()) == {"holds"}
    assert all("at l2 xi 3:" in v.detail for v in uap.verdicts(rec) if v.claim.endswith(uap.AT_PICKED))
    none = statuses(hand_made(picked=False), at_picked=True)
    assert none == dict.fromkeys(["II-T1", "II-T2", "II-F3", "II-F4"], "cannot be tested")
    assert set(statuses(hand_made(picked=False)).values()) == {"holds"}  # the book's xi is decided all the same


def test_the_rule_picks_the_smallest_radius_fooling_half():
    curve = {"radii": [0.2, 0.5, 1.0, 2.0, 4.0], "test": [0.02, 0.1, 0.49, 0.5, 0.9]}
    assert uaps.picked(curve) == 2.0  # not 4.0, nor 1.0 at 49%
    shuffled = {"radii": [4.0, 2.0, 0.2, 1.0], "test": [0.9, 0.6, 0.02, 0.3]}
    assert uaps.picked(shuffled) == 2.0
    assert uaps.picked({"radii": [1.0, 2.0], "test": [0.1, 0.3]}) is None  # cannot be tested at these radii


def test_verdicts_hold_on_a_clear_record():
    assert set(statuses(hand_made()).values()) == {"holds"}


def test_verdicts_fail_on_a_record_without_the_effects():
    found = statuses(hand_made(test=0.3, transfer=0.03, sizes=(0.5, 0.5), batched=0.5, dominant="even"))
    assert found == {
        "II-A1": "does not hold",
        "II-T1": "does not hold",
        "II-T2": "does not hold",
        "II-F3": "does not hold",
        "II-F4": "does not hold",
    }


def test_verdicts_in_part_and_untestable():
    found = statuses(hand_made(test={"natural": 0.8, "vgg11": 0.3}, faithful=0.02, batched=0.02, dominant="none"))
    assert found["II-T1"] == "holds in part"
    assert found["II-A1"] == "cannot be tested"  # neither version fools more than noise
    assert found["II-F4"] == "cannot be tested"  # nothing fooled
    single = statuses(hand_made(archs=("natural",), sizes=(0.8,)))
    assert single["II-T2"] == "not applicable" and single["II-F3"] == "not applicable"


def test_verdicts_weigh_the_spread():
    # the same 4-point rise is real on 10,000 images and noise on 100
    assert statuses(hand_made(sizes=(0.5, 0.54), n_eval=10000))["II-F3"] == "holds"
    assert statuses(hand_made(sizes=(0.5, 0.54), n_eval=100))["II-F3"] == "does not hold"
