"""Section "Leakage": linear probes on frozen features, trained on D_univ and the cyclic D_univ."""

import pytest
import torch

from nrf import zoo
from nrf.sections import leakage


def test_probe_learns_a_linearly_separable_task():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 5
    y = torch.arange(3).repeat(40)
    f = centres[y] + torch.randn(len(y), 8, generator=g)
    out = leakage.probe(f, y, f, 3, steps=100, lr=0.05, weight_decay=0.0, seed=0)
    assert out["train_acc"] == 1.0 and torch.equal(out["pred"], y)


def test_run(tiny, construction, forbid):
    fresh = {"grid": {"lr": [0.05]}, "train_epochs": 1, "model_width": 4, "notebooks": False}
    out = leakage.run("smoke", construction=construction, probe_steps=20, **fresh, **tiny, progress=False)
    assert set(out["probes"]) == set(leakage.DATASETS)
    for probes in out["probes"].values():
        assert set(probes) == set(leakage.ROLES)
        for p in probes.values():
            assert all(0 <= p[k] <= 1 for k in ("train_acc", "test_acc", "shifted"))
    assert out["sizes"]["univ"] > 0 and out["chance"] == pytest.approx(0.1) and out["hardware"]

    forbid(leakage, "probe", "recomputed a stored result")
    again = leakage.run("smoke", construction=construction, probe_steps=20, **fresh, **tiny, progress=False)
    assert again["probes"] == out["probes"]
    assert set(out["fresh"]["best"]) == set(leakage.DATASETS) and out["fresh"]["records"] is None


@pytest.mark.parametrize("bad, match", [({"probe_steps": 0}, "probe_steps"),
                                        ({"construction": {"eps_scale": 0}}, "eps_scale"),
                                        ({"grid": {"lr": []}}, "lr")])
def test_bad_parameters_fail_before_training(tiny, construction, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    with pytest.raises(ValueError, match=match):
        leakage.run("smoke", **{"construction": construction, **tiny, **bad})
