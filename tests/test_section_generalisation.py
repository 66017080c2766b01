"""Sections "Generalisation" and "Interpolation": their grids, computed in process (no notebooks)."""

import pytest

from nrf import zoo
from nrf.sections import constructed_training, generalisation, interpolation

FAST = {"grid": {"lr": [0.05]}, "train_epochs": 1, "model_width": 4, "notebooks": False, "progress": False}


def test_generalisation_and_interpolation_share_points(tiny, construction, monkeypatch):
    out = generalisation.run("smoke", construction=construction, **FAST, **tiny)
    assert set(out["best"]) == set(generalisation.DATASETS) and out["records"] is None
    assert len(out["points"]) == len(generalisation.DATASETS)
    sizes = {r["size"] for r in out["points"]}
    assert len(sizes) == 1  # every data set has the same number of training images
    assert out["cfg"]["profile"] == "smoke" and out["hardware"]
    calls = []
    real = constructed_training.train.train
    monkeypatch.setattr(constructed_training.train, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    inter = interpolation.run("smoke", construction=construction, **FAST, **tiny)
    assert inter["K"] == {1: "adv", 2: "univ-K2", 8: "univ"} and inter["restrict_K"] == 2
    assert set(inter["best"]) == {"adv", "univ-K2", "univ", "univ-class", "adv-half"}
    assert len(calls) == 2  # only univ-K2 and univ-class are new; the others come from the store
    assert inter["best"]["adv"]["history"] == out["best"]["adv"]["history"]


@pytest.mark.parametrize("bad, match", [({"grid": {"lr": [0]}}, "lr"), ({"grid": {"decay": ["cosine"]}}, "decay"),
                                        ({"construction": {"Ks": [0]}}, "Ks")])
def test_bad_parameters_fail_before_training(tiny, construction, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    with pytest.raises(ValueError, match=match):
        generalisation.run("smoke", **{"construction": construction, **FAST, **tiny, **bad})
