"""Section "Transfer": PAPER.md's counting, shapes, one count recomputed directly, caching, parameter checks."""

import math

import pytest
import torch

from nrf import attacks, zoo
from nrf.data import to_float
from nrf.sections import transfer

SMALL = {"targets": [0, "bird"], "n_test": 16, "solver": {"base_size": 32, "epochs": 1}, "progress": False}


def test_draw_targets_avoid_the_label():
    labels = torch.tensor([0, 1, 2, 2, 5])
    aimed = transfer.draw_targets(labels, [0, 2], seed=0)
    assert aimed[[0, 2, 3]].tolist() == [2, 0, 0] and aimed[1] in (0, 2) and aimed[4] in (0, 2)
    assert transfer.draw_targets(labels, [2], seed=0).tolist() == [2] * 5  # the only target: kept, never counted


def test_tally_counts_as_paper():
    # five attempts at target 1: label 1 (never counted), sent (2x), not sent (1x), sent but chance
    aimed = torch.tensor([1, 1, 1, 1, 1, 0])
    labels = torch.tensor([1, 0, 2, 3, 0, 1])
    source = torch.tensor([1, 1, 1, 0, 1, 2])
    other = {"b": torch.tensor([1, 1, 0, 1, 1, 0])}
    clean = {"b": torch.tensor([1, 0, 0, 1, 1, 0])}
    c = transfer.tally(aimed, labels, source, other, clean, [0, 1])
    assert c["attempts"].tolist() == [1, 4] and c["kept"].tolist() == [0, 3]
    assert c["hits"]["b"].tolist() == [0, 2] and c["chance_hits"]["b"].tolist() == [0, 1]
    assert c["fresh"]["b"].tolist() == [0, 2] and c["fresh_hits"]["b"].tolist() == [0, 1]
    r = transfer.rates(c)
    assert math.isnan(r["rate"]["b"][0]) and r["rate"]["b"][1].item() == pytest.approx(2 / 3)
    assert r["pooled"]["b"] == pytest.approx(2 / 3) and r["pooled_chance"]["b"] == pytest.approx(1 / 3)
    assert r["pooled_fresh"]["b"] == pytest.approx(1 / 2) and r["source_rate"] == pytest.approx(3 / 5)


def test_compare_standard_error():
    def kind(p, n):
        return {"pooled": {"b": p}, "pooled_kept": n, "rate": {"b": torch.tensor([p, float("nan")])}}

    c = transfer.compare(kind(0.5, 100), kind(0.3, 400), "b")
    se = math.sqrt(0.25 / 100 + 0.21 / 400)
    assert c["diff"] == pytest.approx(0.2) and c["se"] == pytest.approx(se) and c["z"] == pytest.approx(0.2 / se)
    assert (c["wins"], c["compared"]) == (1, 1)


def test_run(tiny, forbid):
    out = transfer.run("smoke", **tiny, **SMALL)
    raw, n = out["raw"], 16
    assert out["targets"] == [0, 2] and out["n_test"] == n
    assert raw["universal"]["vgg16"].shape == (2, n) and raw["standard"]["natural_seed1"].shape == (n,)
    assert set(raw["clean"]) == {"natural", "natural_seed1", "vgg16"}
    assert ((raw["aimed"] != raw["labels"]) & ((raw["aimed"] == 0) | (raw["aimed"] == 2))).all()
    for kind in transfer.KINDS:
        r = out[kind]
        assert (r["kept"] <= r["attempts"]).all()
        for role in transfer.OTHERS:
            assert (r["hits"][role] <= r["kept"]).all()
            assert torch.equal(r["fresh"][role] + r["chance_hits"][role], r["kept"])
            for a in (r["rate"][role], r["chance"][role], r["fresh_rate"][role]):
                assert a.shape == (2,) and ((a.isnan()) | ((a >= 0) & (a <= 1))).all()
    assert out["universal"]["attempts"].sum() == 2 * n - (raw["labels"] == 0).sum() - (raw["labels"] == 2).sum()
    assert set(out["compare"]) == set(transfer.OTHERS) and set(out["compare_fresh"]) == set(transfer.OTHERS)

    # recomputed directly: the standard perturbations are the paper's PGD, and the universal
    # perturbation toward bird is counted as PAPER.md says on the second natural model
    models = {role: zoo.trained(zoo.recipe(out["cfg"], role, out["train"].identity), out["train"], out["test"],
                                progress=False)[0] for role in ("natural", "natural_seed1")}
    x, y = out["test"].x[raw["index"]], raw["labels"]
    adv = (to_float(x) + attacks.pgd(models["natural"], x, raw["aimed"], norm="l2", eps=1.0)).clamp(0, 1)
    assert torch.equal(attacks.predict(models["natural"], adv), raw["standard"]["natural"])
    xu = (to_float(x) + out["deltas"][1]).clamp(0, 1)
    kept = (y != 2) & (attacks.predict(models["natural"], xu) == 2)
    assert out["universal"]["kept"][1].item() == kept.sum().item()
    sent = attacks.predict(models["natural_seed1"], xu) == 2
    assert out["universal"]["hits"]["natural_seed1"][1].item() == (kept & sent).sum().item()
    assert out["hardware"] and all(isinstance(h, str) for h in out["hardware"])

    forbid(attacks, "perturb", "recomputed a stored result")
    forbid(attacks, "predict", "recomputed a stored result")
    again = transfer.run("smoke", **tiny, **SMALL)
    assert torch.equal(again["universal"]["kept"], out["universal"]["kept"])
    assert torch.equal(again["raw"]["standard"]["vgg16"], raw["standard"]["vgg16"])


@pytest.mark.parametrize("bad, match", [
    ({"n_test": 0}, "n_test"),
    ({"n_test": 10**6}, "n_test"),
    ({"n_test": 2.5}, "n_test"),
    ({"targets": [42]}, "targets"),
    ({"targets": [1, 1]}, "targets"),
    ({"targets": []}, "targets"),
    ({"solver": {"lr": 1}}, "solver"),
    ({"norm": "l1"}, "norm"),
    ({"eps": -1}, "eps"),
    ({"profile": "huge"}, "profile"),
])
def test_bad_parameters_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    args = {**SMALL, **bad}
    with pytest.raises(ValueError, match=match):
        transfer.run(args.pop("profile", "smoke"), **tiny, **args)
