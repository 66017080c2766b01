"""Section "Spatial invariance": the shift grid, the record, option checks, loading from the
store, verdicts."""

import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import attacks, records, zoo
from nrf.sections import spatial

# Two targets, two universal perturbations each on 8 images, 8 standard ones, a 4 x 4 grid.
TINY = {
    **MODELS_TINY,
    "targets": ["airplane", 1],
    "per_target": 2,
    "n_standard": 8,
    "n_eval": 8,
    "stride": 8,
    "base_size": 32,
    "solver_epochs": 1,
    "solver_batch": 32,
}


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


def test_record_is_well_formed_and_loads_the_second_time(tiny, forbid):
    rec = records.get(spatial, TINY)
    r, t = rec["results"], rec["tensors"]
    n_shifts = (32 // 8) ** 2
    assert r["targets"] == [0, 1] and r["seeds"] == [0, 1] and r["distances"] == [0, 8, 16]
    assert r["axis"] == [-16, -8, 0, 8]
    assert t["shifts"].shape == (n_shifts, 2) and t["standard_asr"].shape == (n_shifts,)
    assert t["universal_asr"].shape == (2, 2, n_shifts) and t["universal_deltas"].shape == (2, 2, 3, 32, 32)
    assert t["standard_map"].shape == t["universal_map"].shape == (4, 4)
    assert t["standard_map"][2, 2] == t["standard_asr"][0]  # the zero shift in the middle
    assert len(r["universal"]["curves"]) == 4 and all(len(c) == 3 for c in r["universal"]["curves"])
    assert len(r["standard"]["curve"]) == 3 and len(r["universal"]["chance"]) == 2
    for a in (t["standard_asr"], t["universal_asr"]):
        assert ((a >= 0) & (a <= 1)).all()
    assert t["standard_delta"].norm() <= 1 + 1e-4
    # the zero-shift ASR is the plain ASR of the unshifted perturbation on the same images
    train, test = zoo.load_data("sample")
    cfg = records.resolve(spatial, TINY)
    model, _ = zoo.trained(zoo.recipe(cfg, "natural", train.identity), train, test)
    index = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:8].sort().values
    assert r["standard"]["targets"][0] != test.y[r["standard"]["index"][0]]  # aimed away from its label
    delta = t["universal_deltas"][1, 0]
    assert t["universal_asr"][1, 0, 0].item() == pytest.approx(attacks.asr(model, test.x[index], delta, 0))
    assert len(spatial.verdicts(rec)) == 1

    forbid(records, "compute", "a second call with the same options recomputed the record")
    forbid(attacks, "shifted_asr", "a second call with the same options measured again")
    assert records.get(spatial, TINY)["results"] == r


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"stride": 3}, "stride"),
        ({"stride": 32}, "stride"),
        ({"stride": 0}, "stride"),
        ({"n_eval": 10**6}, "n_eval"),
        ({"n_standard": 2.5}, "n_standard"),
        ({"n_standard": 10**6}, "n_standard"),
        ({"per_target": 0}, "per_target"),
        ({"targets": ["unicorn"]}, "targets"),
        ({"targets": [1, 1]}, "targets"),
        ({"norm": "l1"}, "norm"),
        ({"base_size": 10**6}, "base_size"),
        ({"profile": "huge"}, "profile"),
    ],
)
def test_bad_options_fail_before_any_training(bad, name, tiny, forbid):
    forbid(zoo, "trained", "trained a model before checking the options")
    with pytest.raises(ValueError, match=name):
        records.get(spatial, {**TINY, **bad})


def made(standard, universal, std_chance=0.1, uni_chance=0.1, n=1000):
    """A hand-made spatial record: a standard curve over distances (0, 8, 16) on n images, and four
    universal perturbations (2 seeds x 2 targets) with the given curve, each on n images."""
    curves = [[a + e for a in universal] for e in (-0.01, 0.0, 0.0, 0.01)]
    return {
        "results": {
            "seeds": [0, 1],
            "n_standard": n,
            "n_eval": n,
            "distances": [0, 8, 16],
            "standard": {"curve": list(standard), "chance": std_chance},
            "universal": {"curves": curves, "chance": [uni_chance, uni_chance]},
        }
    }


def status(rec):
    (v,) = spatial.verdicts(rec)
    return v.status


def test_verdicts():
    assert status(made([0.9, 0.2, 0.1], [0.6, 0.5, 0.4])) == "holds"
    assert status(made([0.9, 0.7, 0.5], [0.6, 0.5, 0.4])) == "holds in part"  # standard keep their effect too
    assert status(made([0.9, 0.2, 0.1], [0.6, 0.2, 0.1])) == "holds in part"  # universal lose theirs too
    assert status(made([0.9, 0.8, 0.7], [0.6, 0.2, 0.1])) == "does not hold"
    assert status(made([0.9, 0.2, 0.1], [0.105, 0.1, 0.1])) == "cannot be tested"  # universal at chance
    assert status(made([0.12, 0.1, 0.1], [0.6, 0.5, 0.4], n=50)) == "cannot be tested"  # standard within noise
    v = spatial.verdicts(made([0.9, 0.2, 0.1], [0.6, 0.5, 0.4]))[0]
    assert v.effect == pytest.approx(100 * (0.8 - 0.125)) and v.spread > 0
