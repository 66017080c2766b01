"""Section "Constructed data sets": the catalogue, the common cut, one variant for training."""

import pytest
import torch

from nrf import constructed as core
from nrf import zoo
from nrf.sections import constructed


def test_run_and_dataset(tiny, construction, forbid):
    out = constructed.run("smoke", **tiny, **construction, progress=False)
    names = set(out["names"])
    assert {"adv", "adv-half", "univ", "adv-linf", "univ-linf", "univ-K2", "univ-class", "univ-cyclic"} == names
    assert out["names"]["univ"]["K"] == 8 and out["names"]["adv-half"]["eps"] == out["names"]["adv"]["eps"] / 2
    common = out["common"]
    assert common.sum() > 0, "the tiny settings should keep something"
    for name, s in out["stats"].items():
        assert s["built"] == 1000 and 0 <= s["fooled"] <= 1
        if name != "univ-cyclic":
            assert s["max_gap"] == 0  # uniform labels, independent of the original classes
            assert s["kept"] == common.sum().item()  # every variant cut to the same cells
    data, test, hardware = constructed.dataset("smoke", "univ-K2", **tiny, **construction, progress=False)
    assert len(data) == out["stats"]["univ-K2"]["kept"] and data.x.dtype == torch.float16
    assert (data.x >= 0).all() and (data.x <= 1).all() and len(test) == len(out["test"])
    assert hardware
    # the kept images are exactly what the model was checked on: it sends them to their labels
    model, _ = zoo.trained(zoo.recipe(out["cfg"], "natural", out["train"].identity), out["train"], out["test"],
                           progress=False)
    from nrf import attacks
    assert torch.equal(attacks.predict(model, data.x), data.y)
    cyclic, _, _ = constructed.dataset("smoke", "univ-cyclic", **tiny, **construction, progress=False)
    assert torch.equal(cyclic.y, (cyclic.fine_y + 1) % 10)

    forbid(core, "build", "recomputed a stored result")
    again = constructed.run("smoke", **tiny, **construction, progress=False)
    assert torch.equal(again["common"], common)


@pytest.mark.parametrize("bad, match", [
    ({"Ks": []}, "Ks"),
    ({"Ks": [1, 0]}, "Ks"),
    ({"restrict_K": 3}, "restrict_K"),
    ({"K_univ": 0}, "K_univ"),
    ({"eps_scale": -1}, "eps_scale"),
    ({"n_source": 0}, "n_source"),
    ({"n_source": 10**6}, "n_source"),
    ({"solver": {"momentum": 1}}, "solver"),
    ({"solver": {"steps": 0}}, "steps"),
])
def test_bad_parameters_fail_before_training(tiny, construction, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    with pytest.raises(ValueError, match=match):
        constructed.run("smoke", **tiny, **{**construction, **bad})


def test_unknown_dataset_is_rejected(tiny, construction, forbid):
    forbid(zoo, "trained", "trained")
    with pytest.raises(ValueError, match="dataset"):
        constructed.dataset("smoke", "univ-K3", **tiny, **construction)


def test_budget_note_names_the_scale():
    assert "3 times" in constructed.budget_note({"eps_scale": 3.0})
    assert "at the threat model's budget" in constructed.budget_note({"eps_scale": 1.0})
