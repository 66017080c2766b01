import pytest
import torch

from nrf import attacks, models, store, zoo
from nrf.sections import locality

# Two targets, a 32-image base set and 4 patches on 20 images: seconds on the tiny models.
SMALL = {"targets": ["automobile", "dog"], "n_patches": 4, "n_eval": 20,
         "solver": {"base_size": 32, "epochs": 1, "batch_size": 32}, "device": "cpu", "progress": False}


def test_run_scores_patches_and_recomputes_nothing_the_second_time(tiny, monkeypatch):
    out = locality.run("smoke", **SMALL, **tiny)
    assert out["target"] == out["classes"].index("dog") and out["targets"] == [1, 5]
    assert set(out["results"]) == {"l2"} and out["hardware"]
    r = out["results"]["l2"]
    s = r["scores"]
    assert r["eps"] == 1.0 and r["deltas"].shape == (2, 3, 32, 32)
    assert s["size"] == 11 == out["options"]["patch_size"]  # round(80 / 224 * 32)
    assert s["asr"].shape == s["norms"].shape == (2, 4) and r["rho"].shape == (2,)
    assert s["corners"].shape == (4, 2) and 0 <= s["corners"].min() and s["corners"].max() <= 32 - 11
    assert len(s["eval_index"]) == 20 == len(set(s["eval_index"].tolist()))
    for v in (s["asr"], s["full"], s["chance"]):
        assert ((0 <= v) & (v <= 1)).all()
    assert (s["norms"] <= r["deltas"].flatten(1).norm(dim=1)[:, None] + 1e-5).all()

    def no_save(*args, **kwargs):
        raise AssertionError("a second run with the same parameters recomputed something")

    monkeypatch.setattr(store, "save", no_save)
    again = locality.run("smoke", **SMALL, **tiny)
    assert torch.equal(again["results"]["l2"]["scores"]["asr"], s["asr"])


def test_cut_rescales_l2_patches_to_the_largest_and_zeroes_the_rest():
    delta = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    corners = torch.tensor([[0, 0], [4, 4], [2, 3]])
    patches, norms = locality.cut(delta, corners, 4, "l2")
    assert torch.allclose(patches.flatten(1).norm(dim=1), norms.max().expand(3))
    assert (patches[1, :, :4] == 0).all() and (patches[1, :, :, :4] == 0).all()
    assert torch.allclose(norms[0], delta[:, :4, :4].norm())
    same, _ = locality.cut(delta, corners, 4, "linf")  # linf: no rescaling
    assert torch.equal(same[2, :, 2:6, 3:7], delta[:, 2:6, 3:7]) and same[2].abs().sum() == delta[:, 2:6, 3:7].abs().sum()


def test_asr_many_matches_attacks_asr():
    torch.manual_seed(0)
    model = models.build("resnet18", width=4).eval()
    x = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    deltas = torch.randn(3, 3, 32, 32) * 0.5
    targets = [0, 3, 7]
    got = attacks.asr_many(model, x, deltas, targets, batch_size=7)
    assert torch.allclose(got, torch.tensor([attacks.asr(model, x, d, t) for d, t in zip(deltas, targets)]))


def test_spearman_averages_tied_ranks():
    assert locality.spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 30, 40])) == pytest.approx(1)
    assert locality.spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([4.0, 3, 2, 1])) == pytest.approx(-1)
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): r = 4.5 / sqrt(4.5 * 5)
    assert locality.spearman(torch.tensor([0.1, 0.2, 0.2, 0.3]), torch.tensor([1.0, 2, 3, 4])) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)


@pytest.mark.parametrize("bad", [{"norm": "l1"}, {"eps": -1.0}, {"target": "unicorn"}, {"targets": [1, 2]},
                                 {"n_patches": 0}, {"patch_size": 33}, {"n_eval": 10**6}, {"extras": "yes"},
                                 {"solver": {"lr": 1}}, {"width": 0}])
def test_bad_parameters_fail_before_any_training(bad, tiny, forbid):
    forbid(zoo, "trained", "trained a model before checking parameters")
    with pytest.raises(ValueError, match=next(iter(bad))):  # the message names the parameter
        locality.run("smoke", **{**tiny, "progress": False, **bad})
