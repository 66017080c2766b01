"""Section "Appendix" and nrf.diversity: the sweep, the step test, the penalised solver, the
record, caching, option checks, verdicts."""

import copy

import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import attacks, diversity, models, records, zoo
from nrf.sections import appendix

TINY = {
    **MODELS_TINY,
    "targets": [0, "dog"],
    "target": "cat",
    "steps": [0.5],
    "batches": [4],
    "base_sizes": [4],
    "base_size": 8,
    "solver_batch": 8,
    "solver_epochs": 2,
    "n_eval": 16,
    "n_diverse": 3,
    "layers": ["layer2", "features"],
}


def test_sweep_panels_and_best_step():
    settings = appendix.sweep(0.2, 32, 64, [0.1, 0.2], [16], [16, 64])
    assert settings == [(0.1, 32, 64), (0.2, 16, 64), (0.2, 32, 16), (0.2, 32, 64)]  # the centre once
    p = appendix.panels(settings, (0.2, 32, 64))
    assert p["step"] == {"values": [0.1, 0.2], "rows": [0, 3]} and p["batch"] == {"values": [16, 32], "rows": [1, 3]}
    assert p["base_size"] == {"values": [16, 64], "rows": [2, 3]}
    final = [[0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [0.52, 0.61, 0.72]]
    verdict = appendix.best_step(final, [0.1, 0.2, 0.5], 0.2)
    assert verdict["best"] == 0.5 and verdict["diff"] == pytest.approx(0.0167, abs=1e-3)
    assert not verdict["within_noise"]  # the same small gain for every group is not noise
    noisy = appendix.best_step([[0.5, 0.6, 0.7], [0.6, 0.5, 0.72]], [0.2, 1.0], 0.2)
    assert noisy["best"] == 1.0 and noisy["within_noise"]
    tied = appendix.best_step([final[1], final[1], final[0]], [0.5, 0.2, 1.0], 0.2)
    assert tied["best"] == 0.2 and tied["tied"] == [0.5] and tied["within_noise"]


def test_diversity_solver():
    model = models.build("resnet18", width=4, seed=0).eval()
    x = torch.rand(6, 3, 32, 32)
    opts = {"norm": "l2", "eps": 1.0, "step_size": 0.3, "epochs": 2, "batch_size": 4, "seed": 5}
    plain, curve, penalty = diversity.solve(model, x, 3, n=3, weight=0.0, layers=["layer1", "layer4"], **opts)
    ref, ref_curve = attacks.perturb(
        model, x.repeat(3, 1, 1, 1), torch.tensor([3, 3, 3]), group_size=6, random_start=True, **opts
    )
    assert torch.allclose(plain, ref, atol=1e-5) and torch.equal(curve, ref_curve)  # weight 0 is perturb
    assert penalty.shape == (2,) and ((penalty >= 0) & (penalty <= 1)).all()
    pushed, _, _ = diversity.solve(model, x, 3, n=3, weight=5.0, layers=["layer1", "layer4"], **opts)
    assert (pushed.flatten(1).norm(dim=1) <= 1.0 + 1e-4).all() and not torch.allclose(pushed, plain)
    sim = diversity.similarity(model, x, pushed, ["layer1", "features"], batch_size=4)
    assert sim["pixel"].shape == (3, 3) and sim["spectrum"].shape == (3, 3) and sim["representation"].shape == (2, 3, 3)
    assert torch.allclose(sim["pixel"].diagonal(), torch.ones(3), atol=1e-5)
    assert torch.allclose(sim["spectrum"], diversity.spectrum_cosine(pushed))
    assert torch.allclose(sim["pixel"], diversity.cosines(pushed))
    assert torch.allclose(sim["representation"].diagonal(dim1=1, dim2=2), torch.ones(2, 3), atol=1e-4)
    assert diversity.off_diagonal(sim["pixel"]).shape == (3,)


def test_the_spectrum_cosine_sees_what_a_perturbation_is_made_of_not_where():
    """A shifted copy scores 1 on the band spectra while its pixel cosine is near 0; a negated
    copy scores 1 too (the same pattern); independent noises score about 0; smooth noise and
    fine noise (the same, with every other pixel's sign flipped) score well below 0."""
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(3, 32, 32, generator=gen)
    smooth = torch.nn.functional.interpolate(torch.randn(2, 3, 8, 8, generator=gen), size=32, mode="bilinear")
    checker = (-1.0) ** (torch.arange(32)[:, None] + torch.arange(32))
    deltas = torch.stack([d, d.roll((7, 11), (1, 2)), -d, torch.randn(3, 32, 32, generator=gen), smooth[0]])
    spectrum, pixel = diversity.spectrum_cosine(deltas), diversity.cosines(deltas)
    assert spectrum[0, 1] == pytest.approx(1, abs=1e-5) and abs(pixel[0, 1]) < 0.1
    assert spectrum[0, 2] == pytest.approx(1, abs=1e-5) and pixel[0, 2] == pytest.approx(-1, abs=1e-5)
    assert abs(spectrum[0, 3]) < 0.2
    assert diversity.spectrum_cosine(torch.stack([smooth[0], smooth[1] * checker]))[0, 1] < -0.1
    noise = diversity.spectrum_cosine(torch.randn(20, 3, 32, 32, generator=gen))
    assert abs(diversity.off_diagonal(noise).mean()) < 0.05


def test_pair_difference_is_paired_with_a_jackknife_over_perturbations():
    """For a[i][j] = u_i + u_j the mean over pairs is 2 mean(u), and the jackknife over the
    perturbations gives exactly its standard error, 2 sd(u) / sqrt(n): pairs that share a
    perturbation are not counted as independent (that would give a smaller error)."""
    u = [0.3, -0.1, 0.8, 0.2, -0.5, 0.4, 0.0, 0.1]
    n = len(u)
    a = [[u[i] + u[j] for j in range(n)] for i in range(n)]
    zero = [[0.0] * n for _ in range(n)]
    mean, se = appendix.pair_difference(a, zero)
    m, s = appendix.claims.mean_se(u)
    assert mean == pytest.approx(2 * m) and se == pytest.approx(2 * s)
    assert se > appendix.claims.mean_se([u[i] + u[j] for i in range(n) for j in range(i + 1, n)])[1]
    assert appendix.pair_difference(a, a) == (0.0, 0.0)  # paired: the same pairs cancel
    with pytest.raises(ValueError, match="at least 3 perturbations, got 2"):
        appendix.pair_difference([[1, 0.5], [0.5, 1]], [[1, 0.2], [0.2, 1]])


def test_record(tiny, forbid):
    rec = records.get(appendix, TINY)
    r, t = rec["results"], rec["tensors"]
    assert r["targets"] == [0, 5] and r["target"] == 3 and r["centre"] == {"step": 0.2, "batch": 8, "base_size": 8}
    dyn = r["dynamics"]
    assert dyn["settings"] == [list(s) for s in appendix.sweep(0.2, 8, 8, [0.5], [4], [4])]
    assert torch.tensor(dyn["curves"]).shape == (4, 2, 2) and torch.tensor(dyn["asr"]).shape == (4, 2)
    for a in (dyn["curves"], dyn["asr"], dyn["base_asr"], dyn["chance"]):
        a = torch.tensor(a)
        assert ((a >= 0) & (a <= 1)).all()
    assert dyn["panels"]["base_size"] == {"values": [4, 8], "rows": [1, 2]}
    # I-A6: the image is outside the base set and of another class; the deltas are in the ball
    aug = r["augmented"]
    assert (
        r["image_label"] != 3
        and r["image"] not in appendix._base_order(rec["provenance"]["data"]["n_train"], 0)[:8].tolist()
    )
    assert set(aug["asr"]) == {"natural", "natural_seed1"} and set(aug["asr"]["natural"]) == set(appendix.KINDS)
    deltas = t["augmented_deltas"]
    assert deltas.shape == (3, 3, 32, 32) and (deltas.flatten(1).norm(dim=1) <= 1 + 1e-4).all()
    assert t["augmentations"].shape == (8, 3, 32, 32) and t["image"].shape == (3, 32, 32)
    for run in ("plain", "penalised"):
        assert t[f"diverse_{run}"].shape == (3, 3, 32, 32)
        assert torch.tensor(r["diverse"][run]["representation"]).shape == (2, 3, 3)
        spectrum = diversity.spectrum_cosine(t[f"diverse_{run}"])
        assert torch.allclose(torch.tensor(r["diverse"][run]["spectrum"]), spectrum, atol=1e-6)
    assert r["fine_classes"] is None  # CIFAR-10 has no fine labels: I-F18 does not apply
    found = appendix.verdicts(rec)
    assert [v.test for v in found] == ["I-F9", "I-F9", "I-A6", "I-A6", "I-F17", "I-F17", "I-F17", "I-F18"]
    assert [v.kind for v in found if v.test == "I-F17"] == ["claim", "sanity check", "sanity check"]
    assert found[-1].status == "not applicable"

    # numbers recomputed directly: the standard perturbation's and a diverse one's ASR on the held-out images
    cfg = records.resolve(appendix, TINY)
    train, test = zoo.load_data(cfg["data"])
    model, _ = zoo.trained(zoo.recipe(cfg, "natural", train.identity), train, test)
    xe = test.x[appendix._eval_index(len(test), 16, 0)]
    assert aug["asr"]["natural"]["standard"] == pytest.approx(attacks.asr(model, xe, t["augmented_deltas"][2], 3))
    assert r["diverse"]["penalised"]["asr"][1] == pytest.approx(attacks.asr(model, xe, t["diverse_penalised"][1], 3))

    forbid(zoo, "trained", "trained or loaded a model for a stored record")
    forbid(attacks, "perturb", "recomputed a stored result")
    forbid(attacks, "asr_many", "recomputed a stored result")
    forbid(diversity, "solve", "recomputed a stored result")
    again = records.get(appendix, TINY)
    assert again["results"] == r and again["source"].startswith("store")
    assert torch.equal(again["tensors"]["diverse_penalised"], t["diverse_penalised"])


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"targets": []}, "option targets"),
        ({"targets": [42]}, "option targets"),
        ({"target": "unicorn"}, "option target"),
        ({"target": 42}, "option target"),
        ({"steps": [0, 0.2]}, "option steps"),
        ({"solver_step": -1}, "option solver_step"),
        ({"batches": [0]}, "option batches"),
        ({"batches": [10**6]}, "option batches"),
        ({"base_sizes": [1]}, "option base_sizes"),
        ({"base_sizes": [10**6]}, "option base_sizes"),
        ({"base_size": 10**6}, "option base_size"),
        ({"solver_batch": 10**6}, "option solver_batch"),
        ({"solver_epochs": 0}, "option solver_epochs"),
        ({"n_eval": 0}, "option n_eval"),
        ({"n_eval": 10**6}, "option n_eval"),
        ({"image": -3}, "option image"),
        ({"image": 10**6}, "option image"),
        ({"augment": "mixup"}, "option augment"),
        ({"n_diverse": 1}, "option n_diverse"),
        ({"penalty": 0}, "option penalty"),
        ({"layers": ["fc"]}, "option layers"),
        ({"layers": ["layer1", "layer1"]}, "option layers"),
        ({"eps": -1}, "option eps"),
        ({"step": 0.2}, "unknown option 'step'"),
    ],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(appendix, {**TINY, **bad})


def made(fine_classes=None) -> dict:
    """A hand-made record in which every claim holds: the centre step is the best, K = 4 overfits
    its base set, the augmented perturbation beats the standard one, the penalty pushes apart,
    and the penalised perturbations keep their band spectra while their pixels part."""
    eye = [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
    alike = [[1.0 if i == j else 0.9 for j in range(3)] for i in range(3)]
    spread = [
        [1.0 if i == j else c for j, c in enumerate(row)]
        for i, row in enumerate([[1, 0.05, 0.1], [0.05, 1, 0.0], [0.1, 0.0, 1]])
    ]
    return {
        "results": {
            "targets": [0, 5, 7],
            "classes": [str(i) for i in range(10)],
            "n_eval": 1000,
            "centre": {"step": 0.2},
            "dynamics": {
                "panels": {
                    "step": {"values": [0.1, 0.2, 1.0], "rows": [0, 1, 2]},
                    "base_size": {"values": [4, 64], "rows": [3, 1]},
                },
                "asr": [[0.3, 0.35, 0.4], [0.6, 0.62, 0.58], [0.5, 0.45, 0.55], [0.3, 0.32, 0.28]],
                "base_asr": [[0.4, 0.4, 0.45], [0.7, 0.7, 0.68], [0.6, 0.5, 0.6], [1.0, 0.95, 1.0]],
                "chance": [0.1, 0.1, 0.1],
            },
            "augmented": {
                "asr": {
                    "natural": {"augmented": 0.5, "ordinary": 0.6, "standard": 0.12},
                    "natural_seed1": {"augmented": 0.3, "ordinary": 0.35, "standard": 0.1},
                },
                "chance": {"natural": 0.1, "natural_seed1": 0.1},
            },
            "diverse": {
                "chance": 0.1,
                "plain": {"asr": [0.6, 0.6, 0.6], "pixel": alike, "spectrum": alike, "representation": [alike, alike]},
                "penalised": {
                    "asr": [0.5, 0.55, 0.5],
                    "pixel": eye,
                    "spectrum": [[1.0, 0.88, 0.93], [0.88, 1.0, 0.9], [0.93, 0.9, 1.0]],
                    "representation": [spread, eye],
                },
            },
            "fine_classes": fine_classes,
            "data_identity": "toy",
        }
    }


def statuses(rec) -> list[str]:
    return [v.status for v in appendix.verdicts(rec)]


def test_verdicts_hold_on_a_record_that_should_pass():
    found = appendix.verdicts(made())
    assert [v.status for v in found] == ["holds"] * 7 + ["not applicable"]
    assert found[0].effect == pytest.approx(0) and found[2].effect == pytest.approx(38)
    assert found[4].effect == pytest.approx(90) and found[4].criterion.startswith('the paper: "remain similar')
    assert "distinct" not in found[5].detail and "nearly the same" in found[5].detail
    assert statuses(made(fine_classes=60))[-1] == "cannot be tested"


def test_verdicts_fail_or_cannot_be_tested():
    rec = made()
    d = rec["results"]["dynamics"]
    d["asr"][2] = [0.9, 0.92, 0.95]  # step 1.0 clearly better on test images: the centre holds only on its base set
    d["base_asr"][3] = [0.3, 0.32, 0.28]  # K = 4 no longer overfits
    a = rec["results"]["augmented"]["asr"]
    a["natural"]["augmented"], a["natural_seed1"]["augmented"] = 0.12, 0.05
    rec["results"]["diverse"]["penalised"].update(
        pixel=copy.deepcopy(rec["results"]["diverse"]["plain"]["pixel"]),
        representation=rec["results"]["diverse"]["plain"]["representation"],
        asr=[0.1, 0.11, 0.09],
    )
    assert statuses(rec)[:7] == [
        "holds in part",
        "does not hold",
        "does not hold",
        "does not hold",
        "holds in part",  # I-F17: the spectra stay alike, but the pixels no longer part
        "does not hold",
        "does not hold",
    ]

    flat = made()
    d = flat["results"]["dynamics"]
    d["asr"] = [[0.1, 0.1, 0.1]] * 4  # no step beats chance
    flat["results"]["augmented"]["asr"]["natural"]["ordinary"] = 0.1
    flat["results"]["diverse"]["plain"]["asr"] = [0.1, 0.1, 0.1]
    assert statuses(flat)[0] == "cannot be tested" and statuses(flat)[2:4] == ["cannot be tested"] * 2
    assert statuses(flat)[4] == statuses(flat)[6] == "cannot be tested"
    few = made()
    for run in ("plain", "penalised"):
        d = few["results"]["diverse"][run]
        d.update(asr=d["asr"][:2], **{k: [row[:2] for row in d[k][:2]] for k in ("pixel", "spectrum")})
    assert statuses(few)[4] == "cannot be tested"  # one pair: no standard error
    one = made()
    one["results"]["targets"] = [0]
    assert statuses(one)[:2] == ["cannot be tested"] * 2


def test_the_claim_is_the_papers_sentence_not_the_penaltys_objective():
    """The penalty can part the representations (its own objective, the sanity check) while the
    perturbations become unrelated (band spectra far apart, so their pixels part too): the paper's
    "remain similar, but with changes in spatial arrangements" does not hold then, though the
    check does."""
    rec = made()
    rec["results"]["diverse"]["penalised"]["spectrum"] = [[1.0, 0.2, 0.1], [0.2, 1.0, 0.15], [0.1, 0.15, 1.0]]
    found = [v for v in appendix.verdicts(rec) if v.test == "I-F17"]
    assert [(v.kind, v.status) for v in found] == [
        ("claim", "does not hold"),
        ("sanity check", "holds"),
        ("sanity check", "holds"),
    ]
    assert "spectrum cosine 0.90 without the penalty, 0.15 with" in found[0].detail
