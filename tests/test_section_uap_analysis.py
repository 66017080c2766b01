import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import algorithm1, records, uaps, zoo
from nrf.sections import uap_analysis

TINY = {
    **MODELS_TINY,
    "n_train": 8,
    "max_passes": 2,
    "uap_batch": 4,
    "n_eval": 40,
    "scales": [0.5, 1.0, 2.0],
    "draws": 2,
    "rounds": 2,
    "ft_epochs": 1,
    "ft_size": 64,
    "n_normals": 16,
    "dims": [2, 8],
    "sweep_rms": [1.0],
    "sweep_deepfool": [4.0, 32.0],
    "sweep_n": 4,
    "sweep_passes": 1,
    "sweep_eval": 20,
    "deepfool_n": 8,
}


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"norm": "l1"}, "norm"),
        ({"scales": []}, "scales"),
        ({"scales": [1, -2]}, "scales"),
        ({"recompute": "yes"}, "recompute"),
        ({"rounds": 0}, "rounds"),
        ({"ft_lr": 0}, "ft_lr"),
        ({"ft_size": 0}, "ft_size"),
        ({"pool": 1.5}, "pool"),
        ({"dims": [0]}, "dims"),
        ({"dims": [2, 2]}, "dims"),
        ({"draws": -1}, "draws"),
        ({"epochs": 0}, "epochs"),
        ({"delta": 1}, "delta"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_bad_options_fail_before_any_work(bad, name, tiny, forbid):
    forbid(zoo, "load_data", "loaded data for bad options")
    with pytest.raises(ValueError, match=name):
        records.get(uap_analysis, {**TINY, **bad})


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"dims": [2, 17]}, "dims"),
        ({"n_normals": 10**6}, "n_normals"),
        ({"ft_size": 10**6}, "ft_size"),
        ({"n_eval": 10**6}, "n_eval"),
        ({"sweep_eval": 10**6}, "sweep_eval"),
        ({"deepfool_n": 21}, "deepfool_n"),  # more than sweep_eval's 20
    ],
)
def test_sizes_beyond_the_data_fail_before_training(bad, name, tiny, forbid):
    forbid(zoo, "trained", "trained a model for bad options")
    with pytest.raises(ValueError, match=f"option {name}"):
        records.get(uap_analysis, {**TINY, **bad})


def test_record_is_well_formed_then_loads(tiny, forbid):
    rec = records.get(uap_analysis, TINY)
    r, t = rec["results"], rec["tensors"]
    assert r["norm"] == "l2" and r["n_eval"] == 40 and 0 <= r["clean_acc"] <= 1
    f5 = r["f5"]
    assert f5["scales"] == [0.5, 1.0, 2.0] and f5["radii"] == [0.5, 1.0, 2.0] and f5["recomputed"] is None
    assert torch.tensor(f5["random"]).shape == (2, 3) and len(f5["scaled"]) == 3
    assert all(0 <= p <= 1 for row in f5["random"] for p in row)
    rounds = r["t6"]["rounds"]
    assert len(rounds) == 3  # round 0 and two rounds of fine-tuning (II-T6 as the paper ran it: rounds run)
    assert all(0 <= d["fooling"] <= 1 and 0 <= d["clean_acc"] <= 1 for d in rounds)
    assert rounds[0]["fooling"] == rounds[0]["fooling_first"]
    assert t["rounds"].shape == (3, 3, 32, 32) and (t["rounds"].flatten(1).norm(dim=1) <= 1 + 1e-4).all()
    f7 = r["f7"]
    assert torch.tensor(f7["subspace"]).shape == (2, 2) and len(f7["unconstrained"]) == 2
    s = t["singular_normals"]
    assert len(s) == f7["kept"] <= 16 and (s[:-1] >= s[1:]).all()
    assert 1 <= f7["rank90_normals"] <= f7["kept"] and t["top"].shape == (4, 3, 32, 32)
    found = uap_analysis.verdicts(rec)
    assert [v.test for v in found] == ["II-F5", "II-T6", "II-F7", "II-F7", "II-F5", "II-T6", "II-F7"]
    assert len({v.claim for v in found}) == len(found)

    # the perturbation is the one Algorithm 1 stores for the uap section's settings: loaded, not solved
    cfg = records.resolve(uap_analysis, TINY)
    forbid(algorithm1, "uap", "solved the shared perturbation again")
    train_data, test_data = zoo.load_data(cfg["data"])
    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, _ = zoo.trained(spec, train_data, test_data)
    shared, _ = uaps.universal(model, spec, train_data, n=8, norm="l2", xi=1.0, **uaps.solver(cfg))
    assert torch.equal(t["universal"], shared["v"])

    forbid(records, "compute", "recomputed a stored record")
    again = records.get(uap_analysis, TINY)
    assert again["results"] == r


def test_the_picked_radius_runs_its_own_rounds(tiny, monkeypatch):
    monkeypatch.setattr(uaps, "HALF", 0.0)  # every radius qualifies: the rule picks the sweep's smallest
    cfg = records.resolve(uap_analysis, {**TINY, "rounds": 1})
    r = uap_analysis.run(cfg)["results"]
    p = r["picked"]
    train_data, test_data = zoo.load_data(cfg["data"])
    model, _ = zoo.trained(zoo.recipe(cfg, "natural", train_data.identity), train_data, test_data)
    curve = uaps.sweep(model, zoo.recipe(cfg, "natural", train_data.identity), train_data, test_data, cfg, "l2")
    assert p["xi"]["l2"] == min(curve["radii"]) and p["f5"]["radii"] == [p["xi"]["l2"]]
    assert len(p["t6"]["rounds"]) == 2 and all(0 <= d["fooling"] <= 1 for d in p["t6"]["rounds"])
    assert torch.as_tensor(p["f7"]["subspace"]).shape == (2, 2) and len(p["f7"]["unconstrained"]) == 2
    assert not torch.equal(torch.as_tensor(p["f7"]["subspace"]), torch.as_tensor(r["f7"]["subspace"]))  # not at xi


def test_finetuning_resumes_after_the_last_finished_round(tiny, monkeypatch):
    cfg = records.resolve(uap_analysis, {**TINY, "uap_seed": 3})
    calls = []
    real = uap_analysis.finetune

    def killed_in_round_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(uap_analysis, "finetune", killed_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        uap_analysis.run(cfg)
    calls.clear()
    monkeypatch.setattr(uap_analysis, "finetune", lambda *a, **k: (calls.append(1), real(*a, **k)))
    out = uap_analysis.run(cfg)
    assert len(calls) == 1  # only round 2 ran again
    assert len(out["results"]["t6"]["rounds"]) == 3


# ---- verdicts on hand-made records -------------------------------------------------------------------


def hand_made(
    *,
    universal=0.7,
    random=(0.03, 0.05),
    fresh=(0.7, 0.4),
    ranks=(5, 12),
    sub=(0.3, 0.35),
    free=(0.03, 0.04),
    n_eval=1000,
    picked=True,
):
    rounds = [{"fooling": f, "fooling_first": fresh[0], "clean_acc": 0.8} for f in fresh]
    results = {
        "norm": "l2",
        "xi": {"l2": 1.0, "linf": 10 / 255},
        "n_eval": n_eval,
        "n_train": 100,
        "clean_acc": 0.8,
        "f5": {
            "scales": [0.5, 1.0],
            "radii": [0.5, 1.0],
            "random": [[0.01, r] for r in random],
            "scaled": [0.3, universal],
            "recomputed": None,
        },
        "t6": {"rounds": rounds, "ft_epochs": 1, "ft_lr": 0.01, "pool": 1, "ft_size": 1000},
        "f7": {
            "dims": [10, 50],
            "kept": 128,
            "median_length": 0.2,
            "subspace": [[s / 2 for s in sub], list(sub)],
            "unconstrained": list(free),
            "rank90_normals": ranks[0],
            "rank90_random": ranks[1],
        },
    }
    at = {"scales": [1.0], "radii": [3.0], "random": [[r] for r in random], "scaled": [universal]}
    results["picked"] = {
        "xi": {"l2": 3.0 if picked else None, "linf": None},
        "rule": "a rule",
        "f5": at if picked else None,
        "t6": {"rounds": rounds} if picked else None,
        "f7": {"dims": [10, 50], "subspace": results["f7"]["subspace"], "unconstrained": list(free)}
        if picked
        else None,
    }
    return {"results": results}


def statuses(rec, at_picked=False):
    """Statuses of the verdicts at the book's xi, or at the picked radius."""
    return [v.status for v in uap_analysis.verdicts(rec) if v.claim.endswith(uap_analysis.AT_PICKED) == at_picked]


def test_verdicts_at_the_picked_radius_name_it_or_cannot_be_tested():
    rec = hand_made()
    assert statuses(rec, at_picked=True) == ["holds"] * 3  # II-F5, II-T6, II-F7 (subspace)
    assert all(
        "at l2 xi 3:" in v.detail for v in uap_analysis.verdicts(rec) if v.claim.endswith(uap_analysis.AT_PICKED)
    )
    assert statuses(hand_made(picked=False), at_picked=True) == ["cannot be tested"] * 3
    weak = statuses(hand_made(fresh=(0.7, 0.71)), at_picked=True)
    assert weak[1] == "holds in part"  # the picked radius's own rounds decide its II-T6


def test_verdicts_hold_on_a_clear_record():
    assert statuses(hand_made()) == ["holds"] * 4


def test_verdicts_fail_on_a_record_without_the_effects():
    found = statuses(hand_made(universal=0.06, fresh=(0.7, 0.71), ranks=(12, 12), sub=(0.04, 0.03)))
    assert found == ["does not hold", "holds in part", "does not hold", "does not hold"]  # T6: stays, no drop


def test_t6_in_part_and_untestable():
    assert statuses(hand_made(fresh=(0.7, 0.04)))[1] == "holds in part"  # drops to noise: removed, not lowered
    assert statuses(hand_made(fresh=(0.05, 0.04)))[1] == "cannot be tested"  # nothing to defend against


def test_t6_neither_lowered_nor_kept_does_not_hold():
    # above noise before (by more than 2 s.e.); after, neither significantly lower nor above noise
    assert statuses(hand_made(fresh=(0.08, 0.06)))[1] == "does not hold"
