"""Section "Gallery": the record, option checks, loading from the store, verdicts."""

import pytest
from conftest import TINY as MODELS_TINY

from nrf import records, zoo
from nrf.sections import gallery

# Two targets (the default pair: dog, automobile), a 32-image base set, 4 patches on 20 images:
# seconds on the tiny models.
TINY = {
    **MODELS_TINY,
    "targets": ["automobile", "dog"],
    "base_size": 32,
    "solver_epochs": 1,
    "solver_batch": 32,
    "n_patches": 4,
    "n_eval": 20,
}


def test_record_is_well_formed_and_loads_the_second_time(tiny, forbid):
    rec = records.get(gallery, TINY)
    r, t = rec["results"], rec["tensors"]
    assert r["targets"] == [1, 5] and r["classes"][5] == "dog" and r["n_test"] == 1000
    assert set(r["galleries"]) == {"I-F2"}  # smoke: no extra galleries by default
    g = r["galleries"]["I-F2"]
    assert (g["arch"], g["norm"], g["eps"]) == ("resnet18", "l2", 1.0)
    assert len(g["asr"]) == len(g["chance"]) == 2 and all(0 <= v <= 1 for v in g["asr"] + g["chance"])
    assert t["deltas_I-F2"].shape == (2, 3, 32, 32) and (t["deltas_I-F2"].flatten(1).norm(dim=1) <= 1 + 1e-4).all()
    c = r["compare"]
    assert c["pair"] == [5, 1] and c["label"] not in c["pair"]
    assert t["image"].shape == (3, 32, 32) and 0 <= t["image"].min() and t["image"].max() <= 1
    assert t["standard"].shape == (2, 3, 32, 32) and all(n <= 1 + 1e-4 for n in c["standard_norm"])
    assert len(c["standard_pred"]) == len(c["universal_pred"]) == 2
    assert all(0 <= v <= 32 - c["patch_size"] for corner in c["best_corner"] for v in corner)
    assert c["n_patches"] == 4 and c["n_eval"] == 20 and c["patch_size"] == 11
    assert {v.test for v in gallery.verdicts(rec)} == {"I-F2", "I-F1"}

    forbid(records, "compute", "a second call with the same options recomputed the record")
    forbid(zoo, "trained", "a second call with the same options trained a model")
    again = records.get(gallery, TINY)
    assert again["results"] == r


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"arch": "resnet50"}, "arch"),
        ({"norm": "l1"}, "norm"),
        ({"eps": 0.0}, "eps"),
        ({"pair": ["dog", "dog"]}, "pair"),
        ({"pair": ["dog", 5]}, "pair"),
        ({"pair": ["dog", "cat"]}, "pair"),
        ({"pair": ["dog"]}, "pair"),
        ({"image_seed": 0.5}, "image_seed"),
        ({"extras": 1}, "extras"),
        ({"targets": ["unicorn"]}, "targets"),
        ({"n_eval": 10**6}, "n_eval"),
        ({"patch_size": 33}, "patch_size"),
        ({"solver": {"steps": 3}}, "solver"),
    ],
)
def test_bad_options_fail_before_any_training(bad, name, tiny, forbid):
    forbid(zoo, "trained", "trained a model before checking the options")
    with pytest.raises(ValueError, match=name):
        records.get(gallery, {**TINY, **bad})


def made(asr, chance, clean_acc=0.8, standard_pred=(5, 1), extras=()):
    """A hand-made gallery record: two targets (automobile, dog) on 1000 test images."""
    g = {"arch": "resnet18", "norm": "l2", "eps": 1.0, "clean_acc": clean_acc, "asr": list(asr), "chance": list(chance)}
    galleries = {"I-F2": g, **{k: {**g, "arch": "vgg11"} for k in extras}}
    return {
        "results": {
            "classes": ["c"] * 10,
            "targets": [1, 5],
            "n_test": 1000,
            "galleries": galleries,
            "compare": {"pair": [5, 1], "standard_pred": list(standard_pred), "universal_pred": [5, 3]},
        }
    }


def status(rec, test):
    return next(v.status for v in gallery.verdicts(rec) if v.test == test)


def test_verdicts():
    assert status(made([0.5, 0.4], [0.1, 0.1]), "I-F2") == "holds"
    assert status(made([0.5, 0.11], [0.1, 0.1]), "I-F2") == "holds in part"
    assert status(made([0.1, 0.11], [0.1, 0.1]), "I-F2") == "does not hold"
    assert status(made([0.5, 0.4], [0.1, 0.1], clean_acc=0.1), "I-F2") == "cannot be tested"
    assert status(made([0.5, 0.4], [0.1, 0.1], extras=["I-F12"]), "I-F12") == "holds"
    assert status(made([0.5, 0.4], [0.1, 0.1]), "I-F1") == "holds"
    assert status(made([0.5, 0.4], [0.1, 0.1], standard_pred=(5, 0)), "I-F1") == "holds in part"
    assert status(made([0.5, 0.4], [0.1, 0.1], standard_pred=(0, 0)), "I-F1") == "does not hold"
    v = gallery.verdicts(made([0.5, 0.4], [0.1, 0.1]))[0]
    assert v.effect == pytest.approx(35) and v.spread > 0
