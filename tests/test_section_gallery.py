import pytest
import torch

from nrf import store, zoo
from nrf.sections import gallery

# Two targets (the default pair: dog, automobile) and a 32-image base set: seconds on the tiny models.
SMALL = {"targets": ["automobile", "dog"], "solver": {"base_size": 32, "epochs": 1, "batch_size": 32},
         "device": "cpu", "progress": False}


def test_run_renders_gallery_and_comparison_and_recomputes_nothing_the_second_time(tiny, monkeypatch):
    out = gallery.run("smoke", **SMALL, **tiny)
    main, vs = out["main"], out["compare"]
    assert out["extras"] == {} and out["hardware"]  # smoke: no extra galleries by default
    assert (main["arch"], main["norm"], main["eps"], main["targets"]) == ("resnet18", "l2", 1.0, [1, 5])
    assert main["deltas"].shape == (2, 3, 32, 32)
    assert (main["deltas"].flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()
    assert ((0 <= main["asr"]) & (main["asr"] <= 1)).all() and main["chance"].sum() <= 1
    assert vs["pair"] == [5, 1] and vs["label"] not in vs["pair"]
    assert int(out["test"].y[vs["image"]]) == vs["label"]
    assert vs["standard"].shape == (2, 3, 32, 32) and (vs["standard"].flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()
    assert vs["standard_pred"].shape == vs["universal_pred"].shape == (2,)
    assert vs["best_corner"].shape == (2, 2) and vs["best_corner"].max() <= 32 - vs["patch_size"]
    assert ((vs["patch_chance"] <= 1) & (vs["best_asr"] <= 1)).all()

    def no_save(*args, **kwargs):
        raise AssertionError("a second run with the same parameters recomputed something")

    monkeypatch.setattr(store, "save", no_save)
    again = gallery.run("smoke", **SMALL, **tiny)
    assert torch.equal(again["compare"]["standard"], vs["standard"]) and torch.equal(again["main"]["asr"], main["asr"])


@pytest.mark.parametrize("bad", [{"arch": "resnet50"}, {"norm": "l1"}, {"eps": 0.0}, {"pair": ["dog", "dog"]},
                                 {"pair": ["dog", "cat"]}, {"pair": ["dog"]}, {"image_seed": 0.5},
                                 {"extras": 1}, {"solver": {"steps": 3}}, {"targets": ["unicorn"]}])
def test_bad_parameters_fail_before_any_training(bad, tiny, forbid):
    forbid(zoo, "trained", "trained a model before checking parameters")
    with pytest.raises(ValueError, match=next(iter(bad))):  # the message names the parameter
        gallery.run("smoke", **{**tiny, **SMALL, **bad})
