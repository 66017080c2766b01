"""Section "Transfer": PAPER.md's counting, the record, one count recomputed directly, caching,
option checks, verdicts."""

import math

import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import attacks, records, universals, zoo
from nrf.data import to_float
from nrf.sections import transfer

TINY = {**MODELS_TINY, "targets": [0, "bird"], "n_test": 16, "base_size": 32, "solver_epochs": 1}


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


def test_paired_keeps_the_pairs_both_kinds_send_to_t():
    # four images aimed at targets (0, 1, 1, 0) of [0, 1]; image 3's label is its target (never counted)
    raw = {
        "aimed": torch.tensor([0, 1, 1, 0]),
        "labels": torch.tensor([1, 0, 2, 0]),
        "standard": {"natural": torch.tensor([0, 1, 1, 0]), "b": torch.tensor([0, 1, 2, 0])},
        # universal[role][target row, image]: image 2 is not sent to 1 by the source's universal one
        "universal": {
            "natural": torch.tensor([[0, 0, 0, 0], [1, 1, 2, 1]]),
            "b": torch.tensor([[2, 0, 0, 0], [1, 1, 1, 1]]),
        },
    }
    assert transfer.paired(raw, [0, 1], "b") == {
        "pairs": 2,
        "standard": 2,
        "universal": 1,
        "only_standard": 1,
        "only_universal": 0,
    }


def test_compare_pools_and_counts_wins():
    def kind(p, n):
        return {"pooled": {"b": p}, "pooled_kept": n, "rate": {"b": torch.tensor([p, float("nan")])}}

    c = transfer.compare(kind(0.5, 100), kind(0.3, 400), "b")
    assert c == {"standard": 0.5, "universal": 0.3, "n_standard": 100, "n_universal": 400, "wins": 1, "compared": 1}


def test_record(tiny, forbid):
    rec = records.get(transfer, TINY)
    r, n = rec["results"], 16
    assert r["targets"] == [0, 2] and r["n_test"] == n and r["classes"][2] == "bird"
    assert r["others"] == list(transfer.OTHERS)
    assert set(r["clean_acc"]) == {"natural", "natural_seed1", "vgg16"} and len(r["universal_asr"]) == 2
    for kind in transfer.KINDS:
        k = r[kind]
        assert all(kept <= a for kept, a in zip(k["kept"], k["attempts"])) and k["pooled_kept"] == sum(k["kept"])
        for role in transfer.OTHERS:
            assert all(h <= kept for h, kept in zip(k["hits"][role], k["kept"]))
            assert [f + c for f, c in zip(k["fresh"][role], k["chance_hits"][role])] == k["kept"]
            for rate in (k["rate"][role], k["chance"][role], k["fresh_rate"][role]):
                assert len(rate) == 2 and all(v is None or 0 <= v <= 1 for v in rate)
    assert set(r["compare"]) == set(r["paired"]) == set(transfer.OTHERS)
    for p in r["paired"].values():
        assert p["only_standard"] <= p["standard"] <= p["pairs"] and p["only_universal"] <= p["universal"] <= p["pairs"]
    assert rec["tensors"] == {} and rec["provenance"]["data"]["n_test"] > 0
    assert {v.status for v in transfer.verdicts(rec)} <= {"holds", "does not hold", "cannot be tested"}

    # recomputed directly: the standard perturbations are the paper's PGD, and the universal
    # perturbation toward bird is counted as PAPER.md says on the second natural model
    cfg = records.resolve(transfer, TINY)
    train, test = zoo.load_data(cfg["data"])
    specs = {role: zoo.recipe(cfg, role, train.identity) for role in ("natural", *transfer.OTHERS)}
    models = {role: zoo.trained(spec, train, test)[0] for role, spec in specs.items()}
    uni = universals.per_target(
        models["natural"],
        specs["natural"],
        train,
        test,
        norm="l2",
        eps=1.0,
        targets=[0, 2],
        seed=0,
        **universals.solver(cfg, len(train)),
    )
    raw = transfer.predictions(models, specs, test, uni["deltas"], [0, 2], norm="l2", eps=1.0, n_test=n, seed=0)
    x, y = test.x[raw["index"]], raw["labels"]
    assert ((raw["aimed"] != y) & ((raw["aimed"] == 0) | (raw["aimed"] == 2))).all()
    adv = (to_float(x) + attacks.pgd(models["natural"], x, raw["aimed"], norm="l2", eps=1.0)).clamp(0, 1)
    assert torch.equal(attacks.predict(models["natural"], adv), raw["standard"]["natural"])
    xu = (to_float(x) + uni["deltas"][1]).clamp(0, 1)
    kept = (y != 2) & (attacks.predict(models["natural"], xu) == 2)
    assert r["universal"]["kept"][1] == kept.sum().item()
    sent = attacks.predict(models["natural_seed1"], xu) == 2
    assert r["universal"]["hits"]["natural_seed1"][1] == (kept & sent).sum().item()
    assert r["universal"]["attempts"] == [n - (y == 0).sum().item(), n - (y == 2).sum().item()]

    forbid(zoo, "trained", "trained or loaded a model for a stored record")
    forbid(attacks, "perturb", "recomputed a stored result")
    forbid(attacks, "predict", "recomputed a stored result")
    forbid(attacks, "classify", "recomputed a stored result")
    again = records.get(transfer, TINY)
    assert again["results"] == r and again["source"].startswith("store")


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"n_test": 0}, "option n_test"),
        ({"n_test": 10**6}, "option n_test"),
        ({"n_test": 2.5}, "option n_test"),
        ({"targets": [42]}, "option targets"),
        ({"targets": [1, 1]}, "option targets"),
        ({"targets": []}, "option targets"),
        ({"base_size": 10**6}, "option base_size"),
        ({"solver_step": 0}, "option solver_step"),
        ({"norm": "l1"}, "option norm"),
        ({"eps": -1}, "option eps"),
        ({"profile": "huge"}, "option profile"),
        ({"solver": {"step": 1}}, "unknown option 'solver'"),
    ],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(transfer, {**TINY, **bad})


def record(only_standard, only_universal, pairs=1000, acc=0.9, tally=(0.6, 0.3)):
    """A hand-made record: the same paired counts on both other models (the standard perturbation
    transfers on 300 + only_standard pairs, the universal one on 300 + only_universal), and PAPER.md's
    pooled tally."""
    p = {
        "pairs": pairs,
        "standard": 300 + only_standard,
        "universal": 300 + only_universal,
        "only_standard": only_standard,
        "only_universal": only_universal,
    }
    c = {"standard": tally[0], "universal": tally[1], "n_standard": 400, "n_universal": 2000, "wins": 3, "compared": 10}
    return {
        "results": {
            "others": list(transfer.OTHERS),
            "clean_acc": {r: acc for r in ("natural", *transfer.OTHERS)},
            "compare": {r: c for r in transfer.OTHERS},
            "paired": {r: p for r in transfer.OTHERS},
        }
    }


def test_verdicts():
    found = transfer.verdicts(record(150, 50))
    assert len(found) == 2 and {v.status for v in found} == {"holds"} and {v.test for v in found} == {"I-F6"}
    assert found[0].effect == pytest.approx(10) and found[0].spread == pytest.approx(100 * math.sqrt(200 - 10) / 1000)
    assert "the paper's tally" in found[0].detail and "weak" not in found[0].detail
    assert {v.status for v in transfer.verdicts(record(60, 50))} == {"does not hold"}  # within noise
    # one-sided: universal perturbations transferring more is no support, however large
    assert {v.status for v in transfer.verdicts(record(50, 150))} == {"does not hold"}
    assert {v.status for v in transfer.verdicts(record(0, 0))} == {"cannot be tested"}  # no discordant pairs
    assert "weak models" in transfer.verdicts(record(150, 50, acc=0.3))[0].detail
    # a record from before the paired comparison decides nothing, and says why
    old = record(150, 50)
    del old["results"]["paired"]
    assert {v.status for v in transfer.verdicts(old)} == {"cannot be tested"}
    assert "recompute" in transfer.verdicts(old)[0].detail
