import pytest
import torch

from nrf import attacks, zoo
from nrf.sections import uap

SMALL = {"archs": ["natural", "vgg11"], "n_train": 8, "sizes": [4, 8], "compare_n": 4, "max_passes": 2,
         "uap_batch": 4, "n_eval": 40}


@pytest.mark.parametrize("bad", [{"norms": ["l3"]}, {"norms": "l2"}, {"xi_l2": -1.0}, {"xi_linf": 0},
                                 {"archs": ["resnet50"]}, {"sizes": [0, 4]}, {"delta": 1.0}, {"max_passes": 0},
                                 {"uap_batch": 2.5}, {"n_eval": 0}, {"width": -3}, {"nonsense": 1}])
def test_bad_parameters_raise_before_any_work(bad, forbid):
    forbid(zoo, "load_data", "recomputed")
    with pytest.raises(ValueError):
        uap.run("smoke", progress=False, **bad)


def test_sizes_beyond_the_data_raise_before_training(tiny, forbid):
    forbid(zoo, "trained", "recomputed")
    with pytest.raises(ValueError, match="n_train"):
        uap.run("smoke", progress=False, **tiny, **{**SMALL, "n_train": 10**6})


def test_run_measures_every_table_then_recomputes_nothing(tiny, forbid):
    out = uap.run("smoke", progress=False, **tiny, **SMALL)
    archs, norms = SMALL["archs"], ["l2", "linf"]
    for role in archs:
        for norm in norms:
            v = out["perturbations"][(role, norm)]
            assert v.shape == (3, 32, 32)
            size = v.norm() if norm == "l2" else v.abs().max()
            assert 0 < size <= out["xi"][norm] * (1 + 1e-4)
            row = out["table"][(role, norm)]
            assert 0 <= row["test_fooling"] <= 1 and 0 <= row["train_fooling"] <= 1
            assert 1 <= row["passes"] <= SMALL["max_passes"]
            counts = out["dominant"][(role, norm)]
            assert counts.shape == (10, 10)
            # the counts hold exactly the fooled evaluation images
            assert counts.sum().item() == round(row["test_fooling"] * SMALL["n_eval"])
    for norm in norms:
        t = out["transfer"][norm]
        assert t.shape == (2, 2)
        assert torch.allclose(t.diagonal(), torch.tensor([out["table"][(r, norm)]["test_fooling"] for r in archs]))
    assert out["sizes"]["n"] == [4, 8] and len(out["sizes"]["test_fooling"]) == 2
    # the largest size is the T1 perturbation itself (same key in the store)
    assert out["sizes"]["test_fooling"][-1] == out["table"][("natural", "l2")]["test_fooling"]
    for kind in ("faithful", "batched"):
        c = out["compare"][kind]
        assert c["seconds"] > 0 and 0 <= c["test_fooling"] <= 1 and c["v"].norm() <= 1.0 + 1e-4
    assert out["hardware"] and all(isinstance(h, str) for h in out["hardware"])

    forbid(attacks, "uap", "recomputed")
    forbid(attacks, "predict", "recomputed")
    again = uap.run("smoke", progress=False, **tiny, **SMALL)
    assert again["table"] == out["table"]
    assert torch.equal(again["perturbations"][("vgg11", "linf")], out["perturbations"][("vgg11", "linf")])
