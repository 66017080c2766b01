"""Section "Interpolating universality": the K rows share the Generalisation page's grid points."""

import pytest
from test_section_generalisation import TINY as GENERALISATION

from nrf import grid, records, zoo
from nrf.sections import generalisation, interpolation

TINY = {**GENERALISATION, "target": "dog"}


def test_record_shares_points_with_generalisation(tiny, monkeypatch):
    general = records.get(generalisation, GENERALISATION)["results"]
    calls = []
    real = grid.training.train
    monkeypatch.setattr(grid.training, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    rec = records.get(interpolation, TINY)
    r, t = rec["results"], rec["tensors"]
    assert r["K"] == {"1": "adv", "2": "univ-K2", "8": "univ"} and r["restrict_K"] == 2
    assert set(r["best"]) == {"adv", "univ-K2", "univ", "univ-class", "adv-half"}
    assert len(calls) == 2  # only univ-K2 and univ-class are new; the others come from the store
    assert r["best"]["adv"] == general["best"]["adv"]
    assert r["target"] == "dog" and r["fine_labels"] is False and r["datasets"]["univ-K2"]["base_size"] >= 1
    assert t["deltas"].shape == (3, 3, 32, 32) and t["deltas"].abs().sum() > 0
    assert (t["deltas"].flatten(1).norm(dim=1) <= 8.0 + 1e-3).all()  # l2 eps 1.0 x eps_scale 8
    found = interpolation.verdicts(rec)
    assert [v.test for v in found] == ["I-T1", "I-T5", "I-T2", "I-T2"] and found[-1].status == "not applicable"


@pytest.mark.parametrize(
    "bad, match",
    [({"target": "unicorn"}, "option target"), ({"lrs": []}, "option lrs"), ({"restrict_K": 4}, "option restrict_K")],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(interpolation, {**TINY, **bad})


def record(accs: dict, ks=(1, 2, 8), restrict_k=2, fine=False, n_test=10_000, chance=0.1):
    """A hand-made record: a one-point grid, the final test accuracy of each data set."""
    rows = {str(k): {1: "adv", 8: "univ"}.get(k, f"univ-K{k}") for k in ks}
    points = [{"dataset": n, "final_acc": a} for n, a in accs.items()]
    return {
        "results": {
            "K": rows,
            "restrict_K": restrict_k,
            "points": points,
            "best": {p["dataset"]: p for p in points},
            "n_test": n_test,
            "chance": chance,
            "fine_labels": fine,
        }
    }


FALLS = {"adv": 0.6, "univ-K2": 0.45, "univ": 0.3, "adv-half": 0.6, "univ-class": 0.46}


@pytest.mark.parametrize(
    "accs, statuses",
    [
        (FALLS, ["holds", "holds", "holds", "not applicable"]),
        ({**FALLS, "adv-half": 0.46}, ["holds", "does not hold", "holds", "not applicable"]),
        # one-sided in the paper's direction: D_adv at eps/2 below D_univ at K = 2 is no support
        ({**FALLS, "adv-half": 0.3}, ["holds", "does not hold", "holds", "not applicable"]),
        # "improves modestly": a 4-point gain is not ruled below the 5-point margin at 2 s.e.
        ({**FALLS, "univ-class": 0.49}, ["holds", "holds", "does not hold", "not applicable"]),
        # K = 1 less than 10 points above chance decides nothing
        ({**FALLS, "adv": 0.19}, ["cannot be tested", "cannot be tested", "cannot be tested", "not applicable"]),
        ({**FALLS, "univ-class": 0.65}, ["holds", "holds", "does not hold", "not applicable"]),
        # I-T5 needs a K effect at K = 2 to explain: K = 2 as good as K = 1 leaves nothing to decide
        ({**FALLS, "univ-K2": 0.59}, ["holds", "cannot be tested", "holds", "not applicable"]),
        ({**FALLS, "univ": 0.6}, ["does not hold", "holds", "holds", "not applicable"]),
        ({n: 0.1 for n in FALLS}, ["cannot be tested", "cannot be tested", "cannot be tested", "not applicable"]),
    ],
)
def test_verdicts(accs, statuses):
    assert [v.status for v in interpolation.verdicts(record(accs))] == statuses


def test_verdicts_without_k2_and_with_fine_labels():
    found = interpolation.verdicts(
        record(
            {n: a for n, a in FALLS.items() if n != "univ-K2"} | {"univ-K4": 0.45},
            ks=(1, 4, 8),
            restrict_k=4,
            fine=True,
        )
    )
    assert [v.status for v in found] == ["holds", "not applicable", "holds", "cannot be tested"]


def test_seed_spread_enters_the_verdicts():
    """The decided accuracy is the mean over seeds, and seeds that disagree widen its s.e. (grid.spread)."""
    rec = record(FALLS)
    k2 = rec["results"]["points"][1]
    k2["final_accs"] = [0.2, 0.45, 0.7]  # mean 0.45, as FALLS, but the seeds disagree
    found = interpolation.verdicts(rec)
    assert interpolation.verdicts(record(FALLS))[1].status == "holds"
    # I-T5: D_adv at eps/2 against K = 2, and K = 2's drop from K = 1, both lost in the seeds' spread
    assert found[1].status == "cannot be tested" and found[1].spread > 10 and "no K effect" in found[1].detail
