"""Section "Scaling": the record, an exact point of a curve, option checks, loading from the
store, verdicts."""

import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import attacks, records, zoo
from nrf.sections import scaling

# Two targets, three scales, 8 test images, 4 patches: seconds on the tiny models.
TINY = {
    **MODELS_TINY,
    "targets": [0, "bird"],
    "scales": [2],
    "factor": 3,
    "scale_eval": 8,
    "n_patches": 4,
    "n_eval": 8,
    "base_size": 32,
    "solver_epochs": 1,
    "robust_base_size": 16,
    "robust_solver_epochs": 1,
    "robust_solver_batch": 8,
}


def test_record_is_well_formed_and_loads_the_second_time(tiny, forbid):
    rec = records.get(scaling, TINY)
    r, t = rec["results"], rec["tensors"]
    assert r["targets"] == [0, 2] and r["grid"] == [1.0, 2.0, 3.0]  # 1 (as made) and factor are always measured
    assert set(r["asr"]) == {"universal", "best", "worst", "robust"}
    assert set(r["asr"]["robust"]) == {"natural", "robust"}
    assert set(r["asr"]["best"]) == {"natural", "natural_seed1", "robust"}
    for by_role in r["asr"].values():
        for a in by_role.values():
            assert len(a) == 2 and all(len(row) == 3 and all(0 <= v <= 1 for v in row) for row in a)
    assert all(len(c) == 2 and all(0 <= v <= 1 for v in c) for c in r["chance"].values())
    assert set(r["clean_acc"]) == {"natural", "natural_seed1", "robust"} and 0 <= r["robust_acc"] <= 1
    # the robust model's perturbation is made at factor * eps, the natural one at eps
    assert (t["robust_deltas"].flatten(1).norm(dim=1) <= 3.0 + 1e-4).all()
    assert (t["deltas"].flatten(1).norm(dim=1) <= 1.0 + 1e-4).all()
    p = r["patches"]
    assert p["size"] == 11 and p["n_patches"] == 4 and p["n_eval"] == 8
    assert all(b >= w for b, w in zip(p["best_asr"], p["worst_asr"]))
    assert all(0 <= v <= 32 - 11 for corner in p["best_corner"] + p["worst_corner"] for v in corner)
    # one point of a curve recomputed directly: s = 1 on the natural model is the plain ASR
    train, test = zoo.load_data("sample")
    cfg = records.resolve(scaling, TINY)
    model, _ = zoo.trained(zoo.recipe(cfg, "natural", train.identity), train, test)
    x = test.x[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:8].sort().values]
    assert r["asr"]["universal"]["natural"][1][0] == pytest.approx(attacks.asr(model, x, t["deltas"][1], 2))
    assert len(scaling.verdicts(rec)) == 4

    forbid(records, "compute", "a second call with the same options recomputed the record")
    forbid(attacks, "perturb", "a second call with the same options solved again")
    assert records.get(scaling, TINY)["results"] == r


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"scales": []}, "scales"),
        ({"scales": [0, 1]}, "scales"),
        ({"scales": 2}, "scales"),
        ({"factor": 0.5}, "factor"),
        ({"scale_eval": 0}, "scale_eval"),
        ({"scale_eval": 10**6}, "scale_eval"),
        ({"targets": [42]}, "targets"),
        ({"robust_base_size": 10**6}, "robust_base_size"),
        ({"robust_solver_epochs": 0}, "robust_solver_epochs"),
        ({"patch_size": 99}, "patch_size"),
        ({"eps": -1}, "eps"),
    ],
)
def test_bad_options_fail_before_any_training(bad, name, tiny, forbid):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=name):
        records.get(scaling, {**TINY, **bad})


def made(natural=(0.3, 0.6), seed1=(0.3, 0.6), robust=(0.1, 0.12), own=0.5, down=(0.2, 0.4), chance=0.1, n=1000):
    """A hand-made scaling record, grid (1, 5), factor 5, two targets on n images each: the
    natural model's perturbation at s = 1 and 5 on the three models, the robust model's own at 5
    on the robust model, and at 1 (scaled down) and 5 on the natural one."""

    def rows(at1, at5):
        return [[at1, at5], [at1, at5]]

    asr = {
        "universal": {"natural": rows(*natural), "natural_seed1": rows(*seed1), "robust": rows(*robust)},
        "robust": {"robust": rows(chance, own), "natural": rows(*down)},
    }
    return {
        "results": {
            "grid": [1.0, 5.0],
            "factor": 5.0,
            "n_eval": n,
            "asr": asr,
            "chance": {role: [chance, chance] for role in ("natural", "natural_seed1", "robust")},
        }
    }


def statuses(rec):
    return [v.status for v in scaling.verdicts(rec)]


def test_verdicts():
    assert statuses(made()) == ["holds"] * 4
    # no rise on the other seed
    assert statuses(made(seed1=(0.3, 0.32))) == ["holds in part", "holds", "holds", "holds"]
    assert statuses(made(natural=(0.3, 0.3), seed1=(0.3, 0.3))) == ["does not hold", "holds", "holds", "holds"]
    assert statuses(made(robust=(0.1, 0.4))) == ["holds", "does not hold", "holds", "holds"]  # the robust model reacts
    # a rise of 8 points is not "no reaction": the bound, 8 + 2 s.e., is not below 10 points
    assert statuses(made(robust=(0.1, 0.18)))[1] == "does not hold"
    # the positive control fails: the robust model resisting says nothing
    assert statuses(made(own=0.12)) == ["holds", "cannot be tested", "does not hold", "holds"]
    assert statuses(made(robust=(0.1, 0.4), own=0.45)) == ["holds", "does not hold", "holds in part", "holds"]
    # scaled down to the budget, the robust model's perturbation no longer fools the natural model
    assert statuses(made(down=(0.11, 0.4)))[3] == "does not hold"
    first = scaling.verdicts(made())[0]
    assert first.effect == pytest.approx(30) and first.spread > 0
