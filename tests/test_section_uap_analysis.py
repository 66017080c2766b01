import pytest
import torch

from nrf import attacks, store, zoo
from nrf.sections import uap, uap_analysis

SMALL = {"n_train": 8, "max_passes": 2, "uap_batch": 4, "n_eval": 40, "scales": [0.5, 1.0, 2.0], "draws": 2,
         "rounds": 2, "ft_epochs": 1, "ft_size": 64, "n_normals": 16, "dims": [2, 8]}


@pytest.mark.parametrize("bad", [{"norm": "l1"}, {"scales": []}, {"scales": [1, -2]}, {"recompute": "yes"},
                                 {"rounds": 0}, {"ft_lr": 0}, {"ft_size": 0}, {"pool": 1.5}, {"dims": [0]},
                                 {"draws": -1}, {"epochs": 0}])
def test_bad_parameters_raise_before_any_work(bad, forbid):
    forbid(zoo, "load_data", "recomputed")
    with pytest.raises(ValueError):
        uap_analysis.run("smoke", progress=False, **bad)


def test_dims_beyond_the_normals_raise_before_training(tiny, forbid):
    forbid(zoo, "trained", "recomputed")
    with pytest.raises(ValueError, match="dims"):
        uap_analysis.run("smoke", progress=False, **tiny, **{**SMALL, "dims": [2, 17]})


def test_run_shapes_resume_and_cache(tiny, forbid):
    out = uap_analysis.run("smoke", progress=False, **tiny, **SMALL)
    f5 = out["random_vs_universal"]
    assert f5["random"].shape == (2, 3) and f5["scaled"].shape == (3,) and f5["recomputed"] is None
    assert ((f5["random"] >= 0) & (f5["random"] <= 1)).all()
    assert f5["radii"] == [0.5, 1.0, 2.0]
    rounds = out["defence"]["rounds"]
    assert len(rounds) == 3  # round 0 and two rounds of fine-tuning
    for r in rounds:
        assert 0 <= r["fooling"] <= 1 and 0 <= r["clean_acc"] <= 1 and r["v"].norm() <= 1.0 + 1e-4
    assert rounds[0]["fooling"] == rounds[0]["fooling_first"]
    f7 = out["normals"]
    assert f7["subspace"].shape == (2, 2) and f7["unconstrained"].shape == (2,)
    s = f7["singular_normals"]
    assert len(s) == f7["kept"] <= 16 and (s[:-1] >= s[1:]).all()
    # the shared perturbation is the one the uap section stores for the same settings
    assert torch.equal(out["universal"]["v"], store.load("uap-perturbation", {
        "model": zoo.recipe(out["cfg"], "natural", out["train"].identity), "n": 8, "norm": "l2", "xi": 1.0,
        "max_passes": 2, "delta": 0.2, "batch_size": 4, "overshoot": uap.OVERSHOOT, "seed": 0})["v"])

    forbid(attacks, "uap", "recomputed")
    forbid(attacks, "deepfool", "recomputed")
    forbid(attacks, "predict", "recomputed")
    again = uap_analysis.run("smoke", progress=False, **tiny, **SMALL)
    assert again["defence"]["rounds"][-1]["fooling"] == rounds[-1]["fooling"]
    assert torch.equal(again["normals"]["subspace"], f7["subspace"])


def test_finetuning_resumes_after_the_last_finished_round(tiny, monkeypatch):
    params = {**SMALL, "rounds": 2, "uap_seed": 3}
    calls = []
    real = uap_analysis.finetune

    def killed_in_round_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(uap_analysis, "finetune", killed_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        uap_analysis.run("smoke", progress=False, **tiny, **params)
    calls.clear()
    monkeypatch.setattr(uap_analysis, "finetune", lambda *a, **k: (calls.append(1), real(*a, **k)))
    out = uap_analysis.run("smoke", progress=False, **tiny, **params)
    assert len(calls) == 1  # only round 2 ran again
    assert len(out["defence"]["rounds"]) == 3
