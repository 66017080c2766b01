"""Sweep point "constructed_training": one training run, the same store artifact as a page's grid point."""

import pytest
from test_section_constructed import TINY as CONSTRUCTED

from nrf import constructed, grid, records, sweep, zoo
from nrf.sections import constructed_training as section
from nrf.sections import generalisation

TINY = {
    **CONSTRUCTED,
    "train_epochs": 2,
    "model_width": 4,
    "dataset": "univ-K2",
    "train_lr": 0.05,
    "train_batch_size": 64,
    "decay": "step",
}


def grid_of(point: dict) -> dict:
    """The options of a page's grid holding exactly this sweep point."""
    cfg = {k: v for k, v in point.items() if k not in ("dataset", "train_lr", "train_batch_size", "decay")}
    return {
        **records.resolve(generalisation, cfg),
        "lrs": [point["train_lr"]],
        "batch_sizes": [point["train_batch_size"]],
        "decays": [point["decay"]],
    }


def test_point_is_the_pages_grid_point(tiny, forbid):
    rec = records.get(section, TINY)
    r = rec["results"]
    assert {k: r[k] for k in ("lr", "batch_size", "decay", "epochs")} == {
        "lr": 0.05,
        "batch_size": 64,
        "decay": "step",
        "epochs": 2,
    }
    assert len(r["history"]["test_acc"]) == 2 and r["history"]["lr"] == pytest.approx([0.05, 0.005])
    assert 0 <= r["final_acc"] <= r["best_epoch_acc"] <= 1 and r["chance"] == pytest.approx(0.1)
    assert r["size"] > 0 and r["dataset"] == "univ-K2" and r["variant"]["K"] == 2
    assert section.verdicts(rec) == []

    # a page's in-process grid finds the point the sweep point trained, and the other way round
    other = {**TINY, "train_lr": 0.07, "decay": "none"}
    cat = constructed.Catalogue(grid_of(TINY)).build()
    grid.run(cat, ["univ-K2"], grid_of(other))
    forbid(grid.training, "train", "trained a point that is in the store")
    assert grid.run(cat, ["univ-K2"], grid_of(TINY))["best"]["univ-K2"]["final_acc"] == r["final_acc"]
    assert records.get(section, other)["results"]["history"]["lr"] == [0.07, 0.07]


def test_train_seed_is_the_pages_next_seed(tiny, forbid):
    """A sweep over train_seed fills the store with the seeds a page trains (seed, seed + 1):
    the catalogue stays the one of `seed`."""
    point = {**TINY, "train_epochs": 1, "decay": "none", "seed": 3}
    runs = [records.get(section, {**point, "train_seed": s})["results"] for s in (3, 4)]
    assert [r["seed"] for r in runs] == [3, 4] and runs[0]["history"]["train_loss"] != runs[1]["history"]["train_loss"]
    assert records.get(section, point)["results"]["history"] == runs[0]["history"]  # null: seed
    forbid(grid.training, "train", "trained a seed that the sweep points stored")
    cfg = {**grid_of(point), "seeds": 2}
    cat = constructed.Catalogue(cfg).build()
    row = grid.run(cat, ["univ-K2"], cfg)["points"][0]
    assert row["seeds"] == [3, 4] and row["final_accs"] == [r["final_acc"] for r in runs]


def test_sweep_notebook_fills_the_store(tiny, tmp_path, forbid):
    fixed = {**TINY, "train_epochs": 1, "dataset": "adv", "decay": "none"}
    del fixed["train_lr"]
    done = sweep.run("constructed_training", points=[{"train_lr": 0.03}], fixed=fixed, workers=1, out=tmp_path)
    assert [d["status"] for d in done] == ["done"], done[0]["error"]
    forbid(grid.training, "train", "trained a point that the sweep stored")
    point = {**fixed, "train_lr": 0.03}
    cat = constructed.Catalogue(grid_of(point)).build()
    assert grid.run(cat, ["adv"], grid_of(point))["points"][0]["lr"] == 0.03


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"dataset": "univ-K3"}, "option dataset"),
        ({"train_lr": 0}, "option train_lr"),
        ({"train_batch_size": 0}, "option train_batch_size"),
        ({"decay": "cosine"}, "option decay"),
        ({"decay": "step", "train_epochs": 1}, "option decay"),
        ({"train_seed": -1}, "option train_seed"),
        ({"train_epochs": 0}, "option train_epochs"),
        ({"model_width": 1.5}, "option model_width"),
        ({"Ks": []}, "option Ks"),
        ({"lr": 0}, "option lr"),
    ],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(section, {**TINY, **bad})
