"""Section "Locality": the record, option checks, loading from the store, verdicts; and the
patch helpers of nrf.patches it relies on."""

import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import attacks, claims, models, patches, records, zoo
from nrf.sections import locality

# Two targets, a 32-image base set and 4 patches on 20 images: seconds on the tiny models.
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
    rec = records.get(locality, TINY)
    r, t = rec["results"], rec["tensors"]
    assert r["target"] == 5 and r["targets"] == [1, 5] and r["norm"] == "l2"
    assert set(r["norms"]) == {"l2"} and set(t) == {"deltas_l2"}  # smoke: no extra norm by default
    assert (r["n_patches"], r["patch_size"], r["n_eval"]) == (4, 11, 20)  # 11 = round(80 / 224 * 32)
    p = r["norms"]["l2"]
    assert p["eps"] == 1.0 and t["deltas_l2"].shape == (2, 3, 32, 32)
    assert len(p["corners"]) == 4 and all(0 <= v <= 32 - 11 for corner in p["corners"] for v in corner)
    assert [len(a) for a in p["asr"]] == [len(n) for n in p["norms"]] == [4, 4] and len(p["rho"]) == 2
    for v in (sum(p["asr"], []), p["full"], p["chance"], p["universal_asr"]):
        assert all(0 <= a <= 1 for a in v)
    whole = t["deltas_l2"].flatten(1).norm(dim=1)
    assert all(n <= w + 1e-5 for ns, w in zip(p["norms"], whole) for n in ns)
    assert [v.test for v in locality.verdicts(rec)] == ["I-F3, I-F14"]
    assert len(p["q"]) == 2 and p["q_df"] == 3 and all(q >= 0 for q in p["q"])

    forbid(records, "compute", "a second call with the same options recomputed the record")
    forbid(zoo, "trained", "a second call with the same options trained a model")
    assert records.get(locality, TINY)["results"] == r


def test_cut_rescales_l2_patches_to_the_largest_and_zeroes_the_rest():
    delta = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    corners = torch.tensor([[0, 0], [4, 4], [2, 3]])
    cut, norms = patches.cut(delta, corners, 4, "l2")
    assert torch.allclose(cut.flatten(1).norm(dim=1), norms.max().expand(3))
    assert (cut[1, :, :4] == 0).all() and (cut[1, :, :, :4] == 0).all()
    assert torch.allclose(norms[0], delta[:, :4, :4].norm())
    same, _ = patches.cut(delta, corners, 4, "linf")  # linf: no rescaling
    assert torch.equal(same[2, :, 2:6, 3:7], delta[:, 2:6, 3:7])
    assert same[2].abs().sum() == delta[:, 2:6, 3:7].abs().sum()


def test_per_image_hits_are_the_hits_the_patches_were_scored_by(bare):
    """locality.hits pairs patches image by image; its rates are patches.score's ASRs."""
    torch.manual_seed(0)
    model = models.build("resnet18", width=4).eval()
    data = type(
        "Data",
        (),
        {"x": (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8), "identity": "random-12", "__len__": lambda self: 12},
    )()
    universal = {"deltas": torch.randn(2, 3, 32, 32) * 0.5, "targets": [1, 5]}
    scored = patches.score(
        model, {"tiny": 1}, universal, data, norm="l2", n_patches=4, patch_size=11, n_eval=10, patch_seed=0
    )
    found = locality.hits(model, {"tiny": 1}, universal, scored, data, norm="l2")
    assert found.shape == (2, 4, 10) and found.dtype == torch.bool
    assert torch.allclose(found.float().mean(-1), scored["asr"])


def test_asr_many_matches_attacks_asr():
    torch.manual_seed(0)
    model = models.build("resnet18", width=4).eval()
    x = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    deltas = torch.randn(3, 3, 32, 32) * 0.5
    targets = [0, 3, 7]
    got = attacks.asr_many(model, x, deltas, targets, batch_size=7)
    assert torch.allclose(got, torch.tensor([attacks.asr(model, x, d, t) for d, t in zip(deltas, targets)]))


def test_spearman_averages_tied_ranks():
    assert patches.spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 30, 40])) == pytest.approx(1)
    assert patches.spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([4.0, 3, 2, 1])) == pytest.approx(-1)
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): r = 4.5 / sqrt(4.5 * 5)
    assert patches.spearman(torch.tensor([0.1, 0.2, 0.2, 0.3]), torch.tensor([1.0, 2, 3, 4])) == pytest.approx(
        4.5 / (4.5 * 5) ** 0.5
    )


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"norm": "l1"}, "norm"),
        ({"eps": -1.0}, "eps"),
        ({"target": "unicorn"}, "target"),
        ({"target": 42}, "target"),
        ({"target": "cat"}, "target"),
        ({"targets": [1, 1]}, "targets"),
        ({"n_patches": 0}, "n_patches"),
        ({"patch_size": 33}, "patch_size"),
        ({"n_eval": 10**6}, "n_eval"),
        ({"extras": "yes"}, "extras"),
        ({"base_size": 10**6}, "base_size"),
        ({"width": 0}, "width"),
    ],
)
def test_bad_options_fail_before_any_training(bad, name, tiny, forbid):
    forbid(zoo, "trained", "trained a model before checking the options")
    with pytest.raises(ValueError, match=name):
        records.get(locality, {**TINY, **bad})


def made(asr, q=(20.0, 20.0), full=(0.5, 0.5), chance=(0.1, 0.1), n_eval=1000, extras=False):
    """A hand-made locality record: two targets, 4 patches scored on n_eval images, and each
    target's Cochran's Q over its patches (3 degrees of freedom; q None: a record from before the
    paired test)."""
    p = {"eps": 1.0, "asr": [list(a) for a in asr], "full": list(full), "chance": list(chance)}
    if q is not None:
        p.update(q=list(q), q_df=3)
    norms = {"l2": p, **({"linf": {**p, "eps": 8 / 255}} if extras else {})}
    return {"results": {"norm": "l2", "n_eval": n_eval, "norms": norms}}


def test_verdicts():
    asr = [[0.5, 0.1, 0.3, 0.1]] * 2
    assert [v.status for v in locality.verdicts(made(asr))] == ["holds"]
    assert [v.status for v in locality.verdicts(made(asr, q=(20.0, 2.0)))] == ["holds in part"]
    # Q at its null (about df) is noise, however far apart the patches' ASRs look
    assert [v.status for v in locality.verdicts(made(asr, q=(3.0, 2.0)))] == ["does not hold"]
    # no signal in the whole perturbations: nothing to localise
    assert [v.status for v in locality.verdicts(made(asr, full=(0.1, 0.1)))] == ["cannot be tested"]
    # a record from before the paired test decides nothing
    old = locality.verdicts(made(asr, q=None))
    assert [v.status for v in old] == ["cannot be tested"] and "recompute" in old[0].detail
    found = locality.verdicts(made(asr, extras=True))
    assert [(v.test, v.status) for v in found] == [("I-F3, I-F14", "holds"), ("I-F15", "holds")]
    assert found[0].effect == pytest.approx(20 / 3) and found[0].spread == 0
    assert "did not run this on CIFAR-10" in found[0].criterion


def test_cochran_q_pairs_patches_on_the_same_images():
    """Two patches that hit the same images differ by nothing (Q = 0), however their rates
    compare with binomial noise; patches hitting disjoint images differ strongly."""
    same = [[1, 1, 1]] * 30 + [[0, 0, 0]] * 70
    assert claims.cochran_q(same) == (0.0, 2)
    apart = [[1, 0, 0]] * 30 + [[0, 0, 0]] * 70
    q, df = claims.cochran_q(apart)
    assert claims.chi2_z(q, df) > 5 and abs(claims.chi2_z(df, df)) < 0.5
