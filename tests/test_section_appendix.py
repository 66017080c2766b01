"""Section "Appendix" and nrf.diversity: the sweep, the verdict, the penalised solver, caching, parameter checks."""

import pytest
import torch

from nrf import attacks, diversity, models, zoo
from nrf.sections import appendix

SMALL = {"targets": [0, "dog"], "target": "cat", "steps": [0.5], "batches": [4], "base_sizes": [4],
         "base_size": 8, "batch": 8, "solver_epochs": 2, "n_eval": 16, "n_diverse": 3, "layers": ["layer2", "features"],
         "progress": False}


def test_sweep_and_best_step():
    settings = appendix.sweep(0.2, 32, 64, [0.1, 0.2], [16], [16, 64])
    assert settings == [(0.1, 32, 64), (0.2, 16, 64), (0.2, 32, 16), (0.2, 32, 64)]  # the centre once
    final = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [0.52, 0.61, 0.72]])
    verdict = appendix.best_step(final, [0.1, 0.2, 0.5], 0.2)
    assert verdict["best"] == 0.5 and verdict["diff"] == pytest.approx(0.0167, abs=1e-3)
    assert not verdict["within_noise"]  # the same small gain for every group is not noise
    noisy = appendix.best_step(torch.tensor([[0.5, 0.6, 0.7], [0.6, 0.5, 0.72]]), [0.2, 1.0], 0.2)
    assert noisy["best"] == 1.0 and noisy["within_noise"]
    tied = appendix.best_step(final[[1, 1, 0]], [0.5, 0.2, 1.0], 0.2)
    assert tied["best"] == 0.2 and tied["tied"] == [0.5] and tied["within_noise"]


def test_diversity_solver():
    model = models.build("resnet18", width=4, seed=0).eval()
    x = torch.rand(6, 3, 32, 32)
    opts = {"norm": "l2", "eps": 1.0, "step_size": 0.3, "epochs": 2, "batch_size": 4, "seed": 5}
    plain, curve, penalty = diversity.solve(model, x, 3, n=3, weight=0.0, layers=["layer1", "layer4"], **opts)
    ref, ref_curve = attacks.perturb(model, x.repeat(3, 1, 1, 1), torch.tensor([3, 3, 3]), group_size=6,
                                     random_start=True, **opts)
    assert torch.allclose(plain, ref, atol=1e-5) and torch.equal(curve, ref_curve)  # weight 0 is perturb
    assert penalty.shape == (2,) and ((penalty >= 0) & (penalty <= 1)).all()
    pushed, _, _ = diversity.solve(model, x, 3, n=3, weight=5.0, layers=["layer1", "layer4"], **opts)
    assert (pushed.flatten(1).norm(dim=1) <= 1.0 + 1e-4).all() and not torch.allclose(pushed, plain)
    sim = diversity.similarity(model, x, pushed, ["layer1", "features"], batch_size=4)
    assert sim["pixel"].shape == (3, 3) and sim["representation"].shape == (2, 3, 3)
    assert torch.allclose(sim["pixel"].diagonal(), torch.ones(3), atol=1e-5)
    assert torch.allclose(sim["representation"].diagonal(dim1=1, dim2=2), torch.ones(2, 3), atol=1e-4)
    assert diversity.off_diagonal(sim["pixel"]).shape == (3,)


def test_run(tiny, forbid):
    out = appendix.run("smoke", **tiny, **SMALL)
    assert out["targets"] == [0, 5] and out["target"] == 3 and out["centre"] == (0.2, 8, 8)
    dyn = out["dynamics"]
    assert dyn["settings"] == appendix.sweep(0.2, 8, 8, [0.5], [4], [4])
    assert dyn["curves"].shape == (4, 2, 2) and dyn["asr"].shape == dyn["base_asr"].shape == (4, 2)
    for a in (dyn["curves"], dyn["asr"], dyn["base_asr"], dyn["chance"]):
        assert ((a >= 0) & (a <= 1)).all()
    # I-A6: the image is outside the base set and of another class; the deltas are in the ball
    aug = out["augmented"]
    assert out["train"].y[out["image"]] != 3
    assert out["image"] not in appendix._base_order(len(out["train"]), 0)[:8].tolist()
    assert set(aug["asr"]) == {"natural", "natural_seed1"} and set(aug["deltas"]) == {"augmented", "ordinary",
                                                                                      "standard"}
    assert all((d.norm() <= 1.0 + 1e-4).item() for d in aug["deltas"].values())
    assert aug["augmentations"].shape == (8, 3, 32, 32)
    # one number recomputed directly: the standard perturbation's ASR on the held-out images
    model, _ = zoo.trained(zoo.recipe(out["cfg"], "natural", out["train"].identity), out["train"], out["test"],
                           progress=False)
    xe = out["test"].x[aug["eval_index"]]
    assert aug["asr"]["natural"]["standard"] == pytest.approx(attacks.asr(model, xe, aug["deltas"]["standard"], 3))
    div = out["diverse"]
    for run in ("plain", "penalised"):
        assert div[run]["deltas"].shape == (3, 3, 32, 32) and div[run]["representation"].shape == (2, 3, 3)
        assert div[run]["asr"][1].item() == pytest.approx(attacks.asr(model, xe, div[run]["deltas"][1], 3))
    assert out["fine_classes"] is None  # CIFAR-10 has no fine labels: I-F18 does not apply
    assert out["hardware"] and all(isinstance(h, str) for h in out["hardware"])

    forbid(attacks, "perturb", "recomputed a stored result")
    forbid(attacks, "asr_many", "recomputed a stored result")
    forbid(diversity, "solve", "recomputed a stored result")
    again = appendix.run("smoke", **tiny, **SMALL)
    assert torch.equal(again["dynamics"]["curves"], dyn["curves"])
    assert torch.equal(again["diverse"]["penalised"]["deltas"], div["penalised"]["deltas"])


@pytest.mark.parametrize("bad, match", [
    ({"targets": []}, "targets"),
    ({"target": "unicorn"}, "target"),
    ({"steps": [0, 0.2]}, "steps"),
    ({"step": -1}, "step"),
    ({"batches": [0]}, "batches"),
    ({"base_sizes": [1]}, "base_sizes"),
    ({"base_size": 10 ** 6}, "base_size"),
    ({"solver_epochs": 0}, "solver_epochs"),
    ({"n_eval": 0}, "n_eval"),
    ({"image": -3}, "image"),
    ({"augment": "mixup"}, "augment"),
    ({"n_diverse": 1}, "n_diverse"),
    ({"penalty": 0}, "penalty"),
    ({"layers": ["fc"]}, "layers"),
    ({"eps": -1}, "eps"),
])
def test_bad_parameters_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the parameters")
    with pytest.raises(ValueError, match=match):
        appendix.run("smoke", **tiny, **{**SMALL, **bad})
