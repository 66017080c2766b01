"""Section "Scaling": shapes, exact points of the curves, caching, parameter checks."""

import pytest
import torch

from nrf import attacks, zoo
from nrf.sections import scaling

SMALL = {"targets": [0, "bird"], "scales": [2], "factor": 3, "n_eval": 8, "n_patches": 4, "patch_eval": 8,
         "solver": {"base_size": 32, "epochs": 1}, "robust_solver": {"base_size": 16, "epochs": 1, "batch_size": 8},
         "progress": False}


def test_run(tiny, forbid):
    out = scaling.run("smoke", **tiny, **SMALL)
    assert out["targets"] == [0, 2]
    assert out["grid"].tolist() == [1.0, 2.0, 3.0]  # 1 (as made) and factor are always measured
    assert set(out["asr"]) == {"universal", "best", "worst", "robust"}
    assert set(out["asr"]["robust"]) == {"natural", "robust"}
    assert set(out["asr"]["best"]) == {"natural", "natural_seed1", "robust"}
    for kind in out["asr"].values():
        for a in kind.values():
            assert a.shape == (2, 3) and ((a >= 0) & (a <= 1)).all()
    for c in out["chance"].values():
        assert c.shape == (2,) and ((c >= 0) & (c <= 1)).all()
    # the robust model's perturbation is made at factor * eps, the natural one at eps
    assert (out["robust_deltas"].flatten(1).norm(dim=1) <= 3.0 + 1e-4).all()
    assert (out["deltas"].flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()
    # patches: zero outside their square, best scored at least as high as worst
    p = out["patches"]
    assert (p["best_asr"] >= p["worst_asr"]).all()
    top, left = p["best_corner"][0].tolist()
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[top:top + p["size"], left:left + p["size"]] = True
    assert (p["best"][0][:, ~inside] == 0).all()
    # one point of a curve recomputed directly: s = 1 on the natural model is the plain ASR
    model, _ = zoo.trained(zoo.recipe(out["cfg"], "natural", out["train"].identity), out["train"], out["test"],
                           progress=False)
    x = out["test"].x[torch.randperm(len(out["test"]), generator=torch.Generator().manual_seed(0))[:8].sort().values]
    assert out["asr"]["universal"]["natural"][1, 0].item() == pytest.approx(attacks.asr(model, x, out["deltas"][1], 2))

    forbid(attacks, "asr_many", "recomputed a stored result")
    forbid(attacks, "perturb", "recomputed a stored result")
    again = scaling.run("smoke", **tiny, **SMALL)
    assert torch.equal(again["asr"]["robust"]["robust"], out["asr"]["robust"]["robust"])


@pytest.mark.parametrize("bad, match", [
    ({"scales": []}, "scales"),
    ({"scales": [0, 1]}, "scales"),
    ({"scales": 2}, "scales"),
    ({"factor": 0.5}, "factor"),
    ({"n_eval": 0}, "n_eval"),
    ({"targets": [42]}, "targets"),
    ({"robust_solver": {"momentum": 0.9}}, "robust_solver"),
    ({"patch_size": 99}, "patch_size"),
    ({"eps": -1}, "eps"),
])
def test_bad_parameters_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    with pytest.raises(ValueError, match=match):
        scaling.run("smoke", **tiny, **{**SMALL, **bad})
