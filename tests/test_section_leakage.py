"""Section "Leakage": linear probes on frozen features, trained on D_univ and the cyclic D_univ."""

import pytest
import torch
from test_section_generalisation import TINY as GENERALISATION

from nrf import constructed, grid, models, records, zoo
from nrf.sections import leakage

TINY = {**GENERALISATION, "probe_steps": 20}


def test_probe_learns_a_linearly_separable_task():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 5
    y = torch.arange(3).repeat(40)
    f = centres[y] + torch.randn(len(y), 8, generator=g)
    out = leakage.probe(f, y, f, 3, steps=100, lr=0.05, weight_decay=0.0, seed=0)
    assert out["train_acc"] == 1.0 and torch.equal(out["pred"], y)


def test_features_leave_the_model_in_its_mode():
    model = models.build("resnet18", width=4, seed=0).train()
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    f = leakage.features(model, x, batch_size=2)
    assert model.training  # read in eval mode (running BN statistics), then put back
    assert f.shape[0] == 3 and torch.equal(f, leakage.features(model.eval(), x.float() / 255))


def test_record(tiny, forbid):
    rec = records.get(leakage, TINY)
    r = rec["results"]
    assert set(r["probes"]) == set(leakage.DATASETS)
    for probes in r["probes"].values():
        assert set(probes) == set(leakage.ROLES)
        for p in probes.values():
            assert all(0 <= p[k] <= 1 for k in ("train_acc", "test_acc", "shifted"))
    assert r["sizes"]["univ"] > 0 and r["chance"] == pytest.approx(0.1) and set(r["clean_acc"]) == set(leakage.ROLES)
    assert set(r["fresh"]["best"]) == set(leakage.DATASETS)
    assert [v.test for v in leakage.verdicts(rec)] == ["I-T4", "I-T4"]

    for owner, name in ((leakage, "probe"), (constructed, "build"), (grid.training, "train")):
        forbid(owner, name, f"recomputed a stored result ({name})")
    again = leakage.run(records.resolve(leakage, TINY))
    assert again["results"]["probes"] == r["probes"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"probe_steps": 0}, "option probe_steps"),
        ({"eps_scale": 0}, "option eps_scale"),
        ({"lrs": []}, "option lrs"),
        ({"notebooks": False}, "unknown option 'notebooks'"),
    ],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(leakage, {**TINY, **bad})


def record(natural=0.4, others=0.35, robust=0.2, scratch=0.3, cyclic=0.19, n_test=10_000, chance=0.1):
    """A hand-made record: test accuracy of the probes on D_univ (the source natural model, the
    other natural models, the robust model) and of fresh ResNet-18s on D_univ and the cyclic D_univ."""
    probes = {"natural": natural, "natural_seed1": others, "vgg16": others, "robust": robust}
    points = [{"dataset": "univ", "final_acc": scratch}, {"dataset": "univ-cyclic", "final_acc": cyclic}]
    return {
        "results": {
            "chance": chance,
            "n_test": n_test,
            "roles": list(probes),
            "probes": {"univ": {role: {"test_acc": a} for role, a in probes.items()}},
            "fresh": {"points": points, "best": {p["dataset"]: p for p in points}},
        }
    }


@pytest.mark.parametrize(
    "rec, statuses",
    [
        (record(), ["holds", "holds"]),
        (record(others=0.2), ["holds in part", "holds"]),  # other natural models' probes no better than the robust one
        # the fresh model below the robust probe; and, 5 points above chance, too weak a signal for
        # the cyclic labels to carry (they can carry no more than D_univ's own labels)
        (record(scratch=0.15), ["holds in part", "cannot be tested"]),
        (record(others=0.1, scratch=0.1, robust=0.3), ["does not hold", "cannot be tested"]),
        (record(scratch=0.15, cyclic=0.1), ["holds in part", "cannot be tested"]),
        (record(cyclic=0.1), ["holds", "does not hold"]),  # trained on cyclic labels, it learns nothing of the classes
        (record(natural=0.15), ["cannot be tested", "holds"]),  # the source's probe has no signal
    ],
)
def test_verdicts(rec, statuses):
    assert [v.status for v in leakage.verdicts(rec)] == statuses


def test_seed_spread_enters_the_cyclic_verdict():
    rec = record(cyclic=0.14)
    assert leakage.verdicts(rec)[1].status == "holds"
    rec["results"]["fresh"]["points"][1]["final_accs"] = [0.05, 0.14, 0.23]  # the seeds disagree
    found = leakage.verdicts(rec)[1]
    assert found.status == "does not hold" and found.spread > 4
