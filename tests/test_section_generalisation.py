"""Section "Generalisation": its grid over D_adv and D_univ, trained in process, and its verdicts."""

import pytest
from test_section_constructed import TINY as CONSTRUCTED

from nrf import constructed, grid, records, zoo
from nrf.sections import generalisation

TINY = {**CONSTRUCTED, "lrs": [0.05], "train_epochs": 1, "model_width": 4, "seeds_main": 2}


def test_record(tiny, forbid):
    rec = records.get(generalisation, TINY)
    r = rec["results"]
    assert set(r["best"]) == set(generalisation.DATASETS) == set(r["datasets"])
    assert [p["dataset"] for p in r["points"]] == generalisation.DATASETS  # one setting each
    for norm in ("l2", "linf"):  # the data sets of one norm have the same number of training images
        assert len({p["size"] for p in r["points"] if r["datasets"][p["dataset"]]["norm"] == norm}) == 1
    for p in r["points"]:  # two seeds for D_adv and D_univ, one for the others (smoke's seeds)
        assert p["seeds"] == ([0, 1] if p["dataset"] in grid.MAIN else [0])
        assert len(p["final_accs"]) == len(p["best_epoch_accs"]) == len(p["train_curves"]) == len(p["seeds"])
        assert p["final_acc"] == pytest.approx(sum(p["final_accs"]) / len(p["seeds"]))
        assert all(len(c) == 1 for c in p["train_curves"]) and p["best_epoch_acc"] >= p["final_acc"] - 1e-9
    assert r["datasets"]["adv-half"]["eps"] == r["datasets"]["adv"]["eps"] / 2 and r["n_test"] == 1000
    assert r["chance"] == pytest.approx(0.1) and all(0 <= p["final_acc"] <= 1 for p in r["points"])
    assert {v.status for v in generalisation.verdicts(rec)} <= {"holds", "does not hold", "cannot be tested"}

    forbid(constructed, "build", "built a stored variant again")
    forbid(grid.training, "train", "trained a stored point again")
    again = generalisation.run(records.resolve(generalisation, TINY))
    assert again["results"]["points"] == r["points"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"lrs": [0]}, "option lrs"),
        ({"lrs": [0.1, 0.1]}, "option lrs"),
        ({"decays": ["cosine"]}, "option decays"),
        ({"decays": ["step"]}, "option decays"),
        ({"Ks": [0]}, "option Ks"),
        ({"workers": 2}, "unknown option 'workers'"),
    ],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(generalisation, {**TINY, **bad})


def record(adv, univ, adv_linf, univ_linf, n_test=1000, chance=0.1):
    """A hand-made record: a one-point grid, the final test accuracy of each data set."""
    accs = {"adv": adv, "univ": univ, "adv-linf": adv_linf, "univ-linf": univ_linf}
    points = [{"dataset": n, "final_acc": a, "best_epoch_acc": a} for n, a in accs.items()]
    return {
        "results": {"points": points, "best": {p["dataset"]: p for p in points}, "n_test": n_test, "chance": chance}
    }


@pytest.mark.parametrize(
    "rec, statuses",
    [
        (record(0.6, 0.3, 0.5, 0.2), ["holds", "holds"]),
        (record(0.6, 0.59, 0.5, 0.2), ["does not hold", "holds"]),
        (record(0.6, 0.3, 0.11, 0.1), ["holds", "cannot be tested"]),
        (record(0.3, 0.5, 0.3, 0.5), ["does not hold", "does not hold"]),
    ],
)
def test_verdicts(rec, statuses):
    found = generalisation.verdicts(rec)
    assert [v.status for v in found] == statuses and [v.test for v in found] == ["I-T3", "I-T3"]
    assert found[0].effect == pytest.approx(
        100 * (rec["results"]["best"]["adv"]["final_acc"] - rec["results"]["best"]["univ"]["final_acc"])
    )


def test_seed_spread_widens_the_standard_error():
    """sqrt(binomial^2 + variance over seeds / n_seeds): seeds that disagree decide less."""
    one = {"final_acc": 0.5}
    assert grid.spread(one, 10_000) == pytest.approx(0.005)
    seeds = {"final_acc": 0.5, "final_accs": [0.4, 0.5, 0.6]}
    assert grid.spread(seeds, 10_000) == pytest.approx((0.005**2 + 0.01 / 3) ** 0.5)
    agree = record(0.6, 0.3, 0.5, 0.2, n_test=10_000)
    assert generalisation.verdicts(agree)[0].status == "holds"
    apart = agree["results"]["points"][1]
    apart["final_accs"] = [0.05, 0.3, 0.55]  # D_univ's seeds disagree: mean 0.3, s.e. 0.14
    found = generalisation.verdicts(agree)[0]
    assert found.status == "does not hold" and found.spread > 10
