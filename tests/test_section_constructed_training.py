"""Sweep point "constructed_training": one training run, the grid, the sweep and its collection."""

import pytest

from nrf import train, zoo
from nrf.sections import constructed_training as section

FAST = {"train_epochs": 2, "model_width": 4, "progress": False}


def test_run_trains_on_the_constructed_set_and_caches(tiny, construction, forbid):
    out = section.run("smoke", dataset="univ-K2", lr=0.05, batch_size=64, decay="step", construction=construction,
                      **tiny, **FAST)
    assert out["setting"] == {"lr": 0.05, "batch_size": 64, "decay": "step", "epochs": 2}
    assert len(out["history"]["test_acc"]) == 2
    assert out["history"]["lr"] == pytest.approx([0.05, 0.005])  # one x0.1 drop half-way
    assert 0 <= out["final_acc"] <= out["best_epoch_acc"] <= 1 and out["chance"] == pytest.approx(0.1)
    assert out["size"] > 0 and out["hardware"]

    forbid(train, "train", "trained again")
    again = section.run("smoke", dataset="univ-K2", lr=0.05, batch_size=64, decay="step", construction=construction,
                        **tiny, **FAST)
    assert again["history"] == out["history"]


def test_points_and_sweep(tiny, construction):
    points = section.points_for("smoke", ["adv", "univ"], {"lr": [0.05]})
    assert points == [{"dataset": "adv", "lr": 0.05, "batch_size": 128, "decay": "none"},
                      {"dataset": "univ", "lr": 0.05, "batch_size": 128, "decay": "none"}]
    common = {"construction": construction, "train_epochs": 1, "model_width": 4, **tiny}
    out = section.grid_results("smoke", ["adv", "univ"], grid={"lr": [0.05]}, workers=2, progress=False, **common)
    assert [r["status"] for r in out["records"]] == ["done", "done"]
    assert all(r["notebook"].exists() for r in out["records"])
    assert set(out["best"]) == {"adv", "univ"}
    assert [p["dataset"] for p in out["points"]] == ["adv", "univ"]
    again = section.grid_results("smoke", ["adv", "univ"], grid={"lr": [0.05]}, workers=2, progress=False, **common)
    assert [r["status"] for r in again["records"]] == ["skipped", "skipped"]
    assert again["best"]["univ"]["history"] == out["best"]["univ"]["history"]


@pytest.mark.parametrize("bad, match", [
    ({"dataset": "univ-K3"}, "dataset"),
    ({"lr": 0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"decay": "cosine"}, "decay"),
    ({"train_epochs": 0}, "train_epochs"),
    ({"model_width": 1.5}, "model_width"),
    ({"construction": {"Ks": []}}, "Ks"),
])
def test_bad_parameters_fail_before_training(tiny, construction, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    with pytest.raises(ValueError, match=match):
        section.run("smoke", **{"construction": construction, **tiny, **bad})


def test_bad_grid():
    with pytest.raises(ValueError, match="grid"):
        section.points_for("smoke", ["adv"], {"momentum": [0.9]})
    with pytest.raises(ValueError, match="lr"):
        section.points_for("smoke", ["adv"], {"lr": []})
