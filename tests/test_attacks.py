"""nrf.attacks on the CPU: budgets, success on a small trained model, batching, seeds, errors."""

import pytest
import torch
import torch.nn.functional as F

from nrf import algorithm1, attacks, data, models


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Width-8 convolutions gain little from a second thread, and on a busy machine the threads'
    barriers make every step many times slower; restore the setting for the other test files."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(one_thread):
    """A ResNet-18 (width 8) trained for one epoch on the embedded CIFAR-10 sample, and the
    sample's test split. Images are halved to 16px: a 4x cheaper forward pass keeps the whole
    file within seconds on two CPU cores."""
    train, test = (data.load_cifar10("sample", split) for split in ("train", "test"))
    x, y = F.avg_pool2d(data.to_float(train.x), 2), train.y
    model = models.build("resnet18", width=8, seed=0)
    opt = torch.optim.Adam(model.parameters())  # learns faster than SGD in so few steps
    batches = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).split(32)
    model.train()
    for i, idx in enumerate(batches):  # one epoch, learning rate decayed linearly to zero
        opt.param_groups[0]["lr"] = 3e-3 * (1 - i / len(batches))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, (x, y), (F.avg_pool2d(data.to_float(test.x), 2), test.y)


def _noise_like(delta, norm, seed):
    """Random noise with the same norm as delta (Gaussian for l2, random signs for linf)."""
    g = torch.Generator().manual_seed(seed)
    if norm == "l2":
        r = torch.randn(delta.shape, generator=g)
        return r * delta.norm() / r.norm()
    return torch.randint(0, 2, delta.shape, generator=g).float().mul(2).sub(1) * delta.abs().max()


def test_model_learned(setup):
    model, _, (xt, yt) = setup
    assert (attacks.predict(model, xt) == yt).float().mean() > 0.25


@pytest.mark.parametrize("norm,eps", [("l2", 0.5), ("linf", 4 / 255)])
def test_project_stays_in_ball_and_keeps_small_deltas(norm, eps):
    d = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    p = attacks.project(d, norm, eps)
    assert (attacks._norms(p, norm) <= eps * (1 + 1e-5)).all()
    small = d * 1e-4
    assert torch.allclose(attacks.project(small, norm, eps), small)


@pytest.mark.parametrize("norm,eps", [("l2", 1.0), ("linf", 16 / 255)])
def test_targeted_pgd_budget_range_and_success(setup, norm, eps):
    model, _, (xt, yt) = setup
    x, target = xt[:32], (yt[:32] + 1) % 10
    delta = attacks.pgd(model, x, target, norm=norm, eps=eps)
    assert delta.shape == x.shape
    assert (attacks._norms(delta, norm) <= eps * (1 + 1e-5)).all()
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    assert attacks.asr(model, x, delta, target) > 0.9
    assert attacks.asr(model, x, torch.zeros_like(delta), target) < 0.5


def test_untargeted_pgd_leaves_the_label(setup):
    model, _, (xt, yt) = setup
    x, y = xt[:32], yt[:32]
    delta = attacks.pgd(model, x, y, norm="l2", eps=1.0, targeted=False)
    assert (attacks.predict(model, (x + delta).clamp(0, 1)) != y).float().mean() > 0.9


def test_universal_beats_noise_of_the_same_norm(setup):
    model, (xs, _), (xt, _) = setup
    target, eps = 0, 2.0
    base = xs[torch.randperm(len(xs), generator=torch.Generator().manual_seed(0))[:128]]
    delta, curve = attacks.universal(model, base, target, norm="l2", eps=eps, step_size=0.5, epochs=4, batch_size=64)
    assert delta.shape == xs.shape[1:] and curve.shape == (4,)
    assert delta.norm() <= eps * (1 + 1e-5)
    assert curve[-1] > curve[0]
    held_out = attacks.asr(model, xt, delta, target)
    assert held_out > attacks.asr(model, xt, _noise_like(delta, "l2", 0), target) + 0.3


def test_groups_batched_equal_groups_run_separately(setup):
    model, (xs, _), _ = setup
    x, targets = xs[:12], torch.tensor([1, 5, 7])
    kw = dict(group_size=4, norm="l2", eps=1.0, step_size=0.3, epochs=2, batch_size=2)
    deltas, curve = attacks.perturb(model, x, targets, **kw)
    assert deltas.shape == (3, *x.shape[1:]) and curve.shape == (2, 3)
    for g in range(3):
        d, c = attacks.perturb(model, x[4 * g : 4 * g + 4], targets[g : g + 1], **kw)
        assert torch.allclose(deltas[g], d[0], atol=1e-4)
        assert torch.equal(curve[:, g], c[:, 0])
    chunked, chunked_curve = attacks.perturb(model, x, targets, max_batch=4, **kw)
    assert torch.allclose(deltas, chunked, atol=1e-4) and torch.equal(curve, chunked_curve)


def test_same_seed_same_numbers(setup):
    model, (xs, _), _ = setup
    kw = dict(group_size=4, norm="linf", eps=8 / 255, step_size=2 / 255, epochs=2, batch_size=2, random_start=True)
    a, ca = attacks.perturb(model, xs[:8], torch.tensor([0, 1]), seed=3, **kw)
    b, cb = attacks.perturb(model, xs[:8], torch.tensor([0, 1]), seed=3, **kw)
    c, _ = attacks.perturb(model, xs[:8], torch.tensor([0, 1]), seed=4, **kw)
    assert torch.equal(a, b) and torch.equal(ca, cb)
    assert not torch.equal(a, c)


def test_uint8_input_matches_float(setup):
    model, (xs, _), _ = setup
    x8 = (xs[:4] * 255).round().to(torch.uint8)
    kw = dict(norm="l2", eps=1.0, steps=3)
    assert torch.allclose(
        attacks.pgd(model, x8, torch.zeros(4, dtype=torch.long), **kw),
        attacks.pgd(model, x8.float() / 255, torch.zeros(4, dtype=torch.long), **kw),
        atol=1e-5,
    )


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_crosses_the_boundary(setup, norm):
    model, _, (xt, _) = setup
    x = xt[:10]
    r = algorithm1.deepfool(model, x, norm=norm, num_candidates=4)
    assert r.shape == x.shape
    before, after = attacks.predict(model, x), attacks.predict(model, (x + r).clamp(0, 1))
    assert (after != before).float().mean() >= 0.9
    # minimal: far smaller than what a random direction of the same norm needs to do anything
    noise = torch.stack([_noise_like(ri, norm, i) for i, ri in enumerate(r)])
    assert (attacks.predict(model, (x + noise).clamp(0, 1)) != before).float().mean() < 0.5


@pytest.mark.parametrize("batched", [True, False])
def test_uap_beats_noise_of_the_same_norm(setup, batched):
    model, (xs, _), (xt, _) = setup
    xi = 1.0
    base = xs[torch.randperm(len(xs), generator=torch.Generator().manual_seed(1))[:64]]
    v, history = algorithm1.uap(model, base, xi=xi, norm="l2", max_passes=1, batched=batched, batch_size=32)
    assert v.shape == xs.shape[1:] and v.norm() <= xi * (1 + 1e-5)
    assert len(history) == 1 and 0 < history[0] <= 1
    fooled, by_noise = attacks.fooling_rate(model, xt, v), attacks.fooling_rate(model, xt, _noise_like(v, "l2", 0))
    se = ((fooled * (1 - fooled) + by_noise * (1 - by_noise)) / len(xt)) ** 0.5
    assert fooled - by_noise > 5 * se  # far beyond chance, whatever the fixture model's exact weights


@pytest.mark.parametrize("batched", [True, False])
def test_uap_fooling_on_x_rises_across_passes(setup, batched):
    """Algorithm 1 converges where one perturbation can fool most of X: at a radius well above the
    images' minimal (DeepFool) perturbations (here about 20 times their median), its fooling rate
    on X climbs pass after pass, per-image and batched alike (issue 25; at the medium model's
    radius of about 5 times the median it does not: bench/results/uap_convergence.md)."""
    model, (xs, _), _ = setup
    base = xs[torch.randperm(len(xs), generator=torch.Generator().manual_seed(1))[:64]]
    median = algorithm1.deepfool(model, base, max_iter=10).flatten(1).norm(dim=1).median().item()
    xi = 2.0
    assert xi > 15 * median
    _, history = algorithm1.uap(model, base, xi=xi, norm="l2", delta=0.0, max_passes=5, batched=batched, batch_size=16)
    assert len(history) == 5 and history[-1] > history[0] + 0.1


def test_asr_counts_every_image(setup):
    model, _, (xt, _) = setup
    pred = attacks.predict(model, xt)
    zero = torch.zeros(xt.shape[1:])
    assert attacks.asr(model, xt, zero, 2) == pytest.approx((pred == 2).float().mean().item())
    assert attacks.fooling_rate(model, xt, zero) == 0


def test_shift_is_a_wraparound_roll():
    d = torch.arange(2 * 4 * 5, dtype=torch.float).view(2, 4, 5)
    s = attacks.shift(d, 1, -2)
    assert s[0, 1, 0] == d[0, 0, 2] and s[1, 0, 3] == d[1, 3, 0]
    assert torch.equal(attacks.shift(s, -1, 2), d)


def test_shifted_asr_matches_one_shift_at_a_time(setup):
    model, _, (xt, yt) = setup
    x, target = xt[:10], (yt[:10] + 1) % 10
    g = torch.Generator().manual_seed(0)
    shifts = [(0, 0), (4, 0), (-3, 7), (16, 16), (1, -9)]
    for delta in (torch.randn(x.shape[1:], generator=g) * 0.2, torch.randn(x.shape, generator=g) * 0.2):
        fast = attacks.shifted_asr(model, x, delta, target, shifts, batch_size=7)
        slow = [attacks.asr(model, x, attacks.shift(delta, i, j), target) for i, j in shifts]
        assert torch.allclose(fast, torch.tensor(slow))


def test_patch_and_random_patches():
    d = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(0))
    p = attacks.patch(d, 4, 10, 8)
    assert torch.equal(p[:, 4:12, 10:18], d[:, 4:12, 10:18])
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[4:12, 10:18] = False
    assert (p[:, outside] == 0).all()
    corners = attacks.random_patches(64, 8, 32, seed=0)
    assert corners.shape == (64, 2) and corners.min() >= 0 and corners.max() <= 24
    assert torch.equal(corners, attacks.random_patches(64, 8, 32, seed=0))


def test_visualise_range():
    d = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    d[0, 0, 0] = 10.0  # an outlier is clipped at 3 sigma instead of squashing the rest
    img = attacks.visualise(d)
    assert img.shape == (8, 8, 3) and img.min() >= 0 and img.max() <= 1
    assert img[0, 0, 0] == pytest.approx(1.0) and 0.1 < img.std() < 0.2
    assert (attacks.visualise(torch.zeros(3, 4, 4)) == 0.5).all()


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda m, x, y: attacks.pgd(m, x, y, norm="l1", eps=1.0), "norm"),
        (lambda m, x, y: attacks.pgd(m, x, y, norm="l2", eps=0.0), "eps"),
        (lambda m, x, y: attacks.pgd(m, x, y, norm="l2", eps=1.0, step_size=-1.0), "step_size"),
        (lambda m, x, y: attacks.pgd(m, x, y, norm="l2", eps=1.0, steps=0), "epochs"),
        (lambda m, x, y: attacks.perturb(m, x, y[:2], group_size=3, eps=1.0, step_size=0.1, epochs=1), "group_size"),
        (lambda m, x, y: attacks.perturb(m, x, y[:3], group_size=2, eps=1.0, step_size=0.1, epochs=1), "labels"),
        (
            lambda m, x, y: attacks.perturb(
                m, x, y[:2], group_size=2, eps=1.0, step_size=0.1, epochs=1, batch_size=2, max_batch=1
            ),
            "max_batch",
        ),
        (lambda m, x, y: attacks.project(torch.zeros(2, 3), "linf", -1.0), "eps"),
        (lambda m, x, y: attacks.asr(m, x, torch.zeros(3, 8, 8), 0), "delta"),
        (lambda m, x, y: algorithm1.deepfool(m, x, num_candidates=1), "num_candidates"),
        (lambda m, x, y: algorithm1.uap(m, x, xi=1.0, delta=1.0), "delta"),
        (lambda m, x, y: algorithm1.uap(m, x, xi=0.0), "xi"),
        (lambda m, x, y: attacks.patch(torch.zeros(3, 32, 32), 30, 0, 8), "patch"),
        (lambda m, x, y: attacks.random_patches(4, 40, 32, seed=0), "size"),
    ],
)
def test_bad_parameters_raise(setup, call, name):
    model, _, (xt, yt) = setup
    with pytest.raises(ValueError, match=name):
        call(model, xt[:4], yt[:4])
