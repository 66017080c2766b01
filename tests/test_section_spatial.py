"""Section "Spatial invariance": shapes, consistency with attacks.asr, caching, parameter checks."""

import pytest
import torch

from nrf import attacks, zoo
from nrf.sections import spatial

SMALL = {"targets": ["airplane", 1], "per_target": 2, "n_standard": 8, "n_eval": 8, "stride": 8,
         "solver": {"base_size": 32, "epochs": 1}, "progress": False}


def test_shift_grid_and_centring():
    shifts, ring = spatial.shift_grid(8, 2)
    assert shifts.shape == (16, 2) and shifts[0].tolist() == [0, 0]
    assert ring.tolist()[:4] == [0, 2, 4, 2]  # (0, 6) is 2 px the other way round
    assert ring.max() == 4
    asr = torch.zeros(16)
    asr[0] = 1.0  # only the zero shift succeeds
    image, axis = spatial.centred(asr, 8, 2)
    assert axis.tolist() == [-4, -2, 0, 2]
    assert image[2, 2] == 1.0 and image.sum() == 1.0  # the zero shift sits where both axes read 0
    distances, curve = spatial.ring_curve(asr, ring)
    assert distances.tolist() == [0, 2, 4] and curve.tolist() == [1.0, 0.0, 0.0]
    assert spatial.retention(curve, 0.5).tolist() == [1.0, -1.0, -1.0]


def test_run(tiny, forbid):
    out = spatial.run("smoke", **tiny, **SMALL)
    n_shifts = (32 // 8) ** 2
    assert out["targets"] == [0, 1] and out["seeds"] == [0, 1]
    assert out["standard"]["asr"].shape == (n_shifts,)
    assert out["universal"]["asr"].shape == (2, 2, n_shifts)
    assert out["universal"]["deltas"].shape == (2, 2, 3, 32, 32)
    assert out["distances"].tolist() == [0, 8, 16]
    assert out["universal"]["curves"].shape == (4, 3)
    for a in (out["standard"]["asr"], out["universal"]["asr"], out["universal"]["chance"]):
        assert ((a >= 0) & (a <= 1)).all()
    assert out["standard"]["map"][2, 2] == out["standard"]["asr"][0]  # zero shift in the middle
    # each standard delta is within the ball and aimed at a class other than its image's label
    assert (out["standard"]["deltas"].flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()
    assert (out["standard"]["targets"] != out["test"].y[out["standard"]["index"]]).all()
    # the zero-shift ASR is the plain ASR of the unshifted perturbation on the same images
    model, _ = zoo.trained(zoo.recipe(out["cfg"], "natural", out["train"].identity), out["train"], out["test"],
                           progress=False)
    x = out["test"].x[out["universal"]["index"]]
    delta = out["universal"]["deltas"][1, 0]
    assert out["universal"]["asr"][1, 0, 0].item() == pytest.approx(attacks.asr(model, x, delta, 0))
    assert out["hardware"] and all(isinstance(h, str) for h in out["hardware"])

    forbid(attacks, "perturb", "recomputed a stored result")
    forbid(attacks, "shifted_asr", "recomputed a stored result")
    again = spatial.run("smoke", **tiny, **SMALL)
    assert torch.equal(again["universal"]["asr"], out["universal"]["asr"])
    assert torch.equal(again["standard"]["asr"], out["standard"]["asr"])


@pytest.mark.parametrize("bad, match", [
    ({"stride": 3}, "stride must divide"),
    ({"stride": 0}, "stride"),
    ({"n_eval": 10**6}, "n_eval"),
    ({"n_standard": 2.5}, "n_standard"),
    ({"per_target": 0}, "per_target"),
    ({"targets": ["unicorn"]}, "targets"),
    ({"targets": [1, 1]}, "targets"),
    ({"solver": {"lr": 1}}, "solver"),
    ({"norm": "l1"}, "norm"),
    ({"profile": "huge"}, "profile"),
])
def test_bad_parameters_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    args = {**SMALL, **bad}
    with pytest.raises(ValueError, match=match):
        spatial.run(args.pop("profile", "smoke"), **tiny, **args)
