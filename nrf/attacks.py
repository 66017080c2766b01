"""Perturbations and the measures on them.

One solver, `perturb`, computes every perturbation of Part I: x holds G groups of K images
and each group gets one delta, found by normalised-gradient PGD over mini-batches of its
images. K = 1 is the standard per-image attack (`pgd`), one group of a whole set is a
universal perturbation (`universal`), and many groups are the per-batch universal
perturbations of D_univ and the K-interpolation. Part II's untargeted solver (DeepFool and
Algorithm 1) lives in nrf/algorithm1.py. Images are float in [0, 1] (uint8 is accepted and
scaled), every epsilon is in pixel units, and x + delta is always clipped to [0, 1].
"""

import torch
import torch.nn.functional as F

from nrf.runtime import autocast, bar, device_batch, device_of, evaluating, generator

NORMS = ("l2", "linf")


def check_norm(norm):
    """The one-line error for a norm other than l2 and linf."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")


def check_positive(name, value):
    """The one-line error for a parameter that must be positive."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")


def as_float(x):
    """Images in [0, 1]: uint8 is scaled, float passes through."""
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def _norms(v, norm):
    """Per-sample l2 / linf norms of [N, ...]."""
    flat = v.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


def per_sample(values, like):
    """[N] values shaped [N, 1, 1, ...] to broadcast over the samples of `like` [N, ...]."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project each delta[i] of [N, ...] onto the `norm` ball of radius eps (l2: rescale, linf: clamp)."""
    check_norm(norm)
    check_positive("eps", eps)
    if delta.dim() < 2:
        raise ValueError(f"delta must be [N, ...] with a sample dimension first; got shape {tuple(delta.shape)}")
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / _norms(delta, "l2").clamp_min(1e-12)).clamp(max=1.0)
    return delta * per_sample(scale, delta)


def step_direction(g, norm):
    """Normalised gradient per sample: the steepest-ascent unit step of the norm."""
    if norm == "linf":
        return g.sign()
    return g / per_sample(_norms(g, "l2").clamp_min(1e-12), g)


def random_in_ball(shape, norm, eps, gen, device):
    """Uniform in the eps-ball: linf per coordinate; l2 a Gaussian direction with radius eps * u^(1/d)."""
    if norm == "linf":
        return (torch.rand(shape, generator=gen, device=device) * 2 - 1) * eps
    d = torch.randn(shape, generator=gen, device=device)
    dim = d[0].numel()
    radius = eps * torch.rand(shape[0], generator=gen, device=device) ** (1 / dim)
    return d * per_sample(radius / _norms(d, "l2").clamp_min(1e-12), d)


def perturb(
    model,
    x,
    labels,
    *,
    group_size=1,
    norm="l2",
    eps,
    step_size,
    epochs,
    batch_size=None,
    targeted=True,
    random_start=False,
    seed=0,
    max_batch=None,
    desc=None,
):
    """One perturbation per group of `group_size` consecutive images of x, all groups at once.

    x: [N, C, H, W] images (float in [0, 1] or uint8; any device: chunks move to the model's
    device), N = G * group_size. labels: [G] (one target per group; for untargeted, the
    label to leave) or [N] (one per image, e.g. the true labels for an untargeted attack).
    Each of `epochs` passes visits every group's K images in mini-batches of `batch_size`
    per group (default and cap: K) in an order drawn from `seed` once for all groups, so a
    group's result does not depend on which other groups ran beside it. A step is
    delta -/+ step_size * g/||g||_2 (l2) or sign(g) (linf) of the summed cross-entropy of
    f(clip(x + delta)), then projection onto the eps-ball; with K = 1 delta is also kept so
    that x + delta stays in [0, 1] (standard PGD). `max_batch` caps the images in one
    forward pass: groups run in chunks, each through all its epochs. The random start
    (uniform in the ball) is drawn per chunk, so it depends on max_batch. `desc`: a progress
    bar with that label (for long solves; none by default, as inside training).

    Returns (deltas [G, C, H, W] float on x's device, curve [epochs, G] on x's device):
    curve[e, g] is the fraction of group g's images that reached the target (targeted) or
    left their label (untargeted) during epoch e, read off the forward passes of the
    attack itself (like a running training accuracy), so it costs no extra pass.
    """
    check_norm(norm)
    check_positive("eps", eps)
    check_positive("step_size", step_size)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1; got {epochs!r}")
    if x.dim() != 4:
        raise ValueError(f"x must be [N, C, H, W]; got shape {tuple(x.shape)}")
    n = len(x)
    if not isinstance(group_size, int) or group_size < 1 or n % group_size:
        raise ValueError(f"group_size must be a positive int dividing len(x) = {n}; got {group_size!r}")
    k, g_total = group_size, n // group_size
    labels = torch.as_tensor(labels)
    if labels.shape not in ((g_total,), (n,)):
        raise ValueError(f"labels must have shape [G] = [{g_total}] or [N] = [{n}]; got {tuple(labels.shape)}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None; got {batch_size!r}")
    b = k if batch_size is None else min(batch_size, k)
    if max_batch is not None and (not isinstance(max_batch, int) or max_batch < b):
        raise ValueError(f"max_batch must be an int >= the per-group batch {b} (or None); got {max_batch!r}")
    groups_per_chunk = g_total if max_batch is None else max(1, max_batch // b)

    dev = device_of(model)
    gen = generator(seed, dev)
    orders = torch.stack([torch.randperm(k, generator=gen, device=dev) for _ in range(epochs)]) if b < k else None
    labels = labels.to(dev).long()
    labels = labels.repeat_interleave(k) if labels.shape == (g_total,) else labels
    sign = -1.0 if targeted else 1.0  # targeted: descend the loss to the target
    deltas = torch.empty(g_total, *x.shape[1:], dtype=torch.float32, device=x.device)
    curve = torch.empty(epochs, g_total, dtype=torch.float32, device=x.device)
    chunks = bar(total=epochs * -(-g_total // groups_per_chunk), desc=desc, disable=desc is None)
    with evaluating(model), chunks:
        for g0 in range(0, g_total, groups_per_chunk):
            g1 = min(g0 + groups_per_chunk, g_total)
            xc = x[g0 * k : g1 * k].to(dev).view(g1 - g0, k, *x.shape[1:])  # stays uint8 if uint8
            yc = labels[g0 * k : g1 * k].view(g1 - g0, k)
            x0 = as_float(xc[:, 0]) if k == 1 else None
            delta = torch.zeros(g1 - g0, *x.shape[1:], device=dev)
            if random_start:
                delta = random_in_ball(delta.shape, norm, eps, gen, dev)
                if k == 1:
                    delta = (x0 + delta).clamp(0, 1) - x0
            chunk_curve = []
            for e in range(epochs):
                hits = torch.zeros(g1 - g0, device=dev)
                for s in range(0, k, b):
                    if orders is None:
                        xb, yb = xc, yc
                    else:
                        idx = orders[e, s : s + b]
                        xb, yb = xc[:, idx], yc[:, idx]
                    delta.requires_grad_(True)
                    # K = 1 keeps x + delta in [0, 1] itself; clamping again would only zero the
                    # gradient of pixels that rounding put an ulp outside
                    xadv = (as_float(xb) + delta[:, None]).flatten(0, 1)
                    if k > 1:
                        xadv = xadv.clamp(0, 1)
                    with autocast(dev):
                        logits = model(xadv).float()
                    loss = F.cross_entropy(logits, yb.flatten(), reduction="sum")
                    (grad,) = torch.autograd.grad(loss, delta)
                    hit = logits.detach().argmax(1) == yb.flatten()
                    hits += (hit if targeted else ~hit).view(yb.shape).sum(1)
                    delta = project(delta.detach() + sign * step_size * step_direction(grad, norm), norm, eps)
                    if k == 1:
                        delta = (x0 + delta).clamp(0, 1) - x0
                chunk_curve.append(hits / k)
                chunks.update(1)
            deltas[g0:g1] = delta.to(x.device)
            curve[:, g0:g1] = torch.stack(chunk_curve).to(x.device)
    return deltas, curve


def pgd(model, x, y, *, norm, eps, steps=10, step_size=None, targeted=True, random_start=False, seed=0):
    """Standard per-image PGD (the paper's: step eps/3, 10 steps, no restarts): perturb with K = 1.
    y: targets (targeted) or true labels (untargeted), [N]. Returns delta [N, C, H, W]."""
    check_positive("eps", eps)
    step_size = eps / 3 if step_size is None else step_size
    delta, _ = perturb(
        model,
        x,
        y,
        group_size=1,
        norm=norm,
        eps=eps,
        step_size=step_size,
        epochs=steps,
        targeted=targeted,
        random_start=random_start,
        seed=seed,
    )
    return delta


def universal(model, x, target, *, norm, eps, step_size, epochs, batch_size, seed=0, desc=None):
    """A targeted universal perturbation: one delta for all of x (the base set) toward `target`.
    Returns (delta [C, H, W], curve [epochs]: success rate on x during each epoch)."""
    deltas, curve = perturb(
        model,
        x,
        torch.tensor([int(target)]),
        group_size=len(x),
        norm=norm,
        eps=eps,
        step_size=step_size,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        desc=desc,
    )
    return deltas[0], curve[:, 0]


def classify(model, x, delta=None, batch_size=500):
    """Labels C(clip(x + delta)) in batches on the model's device; delta None, [C,H,W] or [N,C,H,W]."""
    check_positive("batch_size", batch_size)
    out = []
    with evaluating(model) as dev, torch.no_grad(), autocast(dev):
        for i in range(0, len(x), batch_size):
            xb = as_float(x[i : i + batch_size].to(dev))
            if delta is not None:
                d = delta if delta.dim() == 3 else delta[i : i + batch_size]
                xb = (xb + d.to(dev)).clamp(0, 1)
            out.append(model(xb).argmax(1))
    return torch.cat(out).to(x.device)


def _check_delta(x, delta):
    if delta.shape != x.shape[1:] and delta.shape != x.shape:
        raise ValueError(
            f"delta must be [C, H, W] (shared) or [N, C, H, W] (per image) for x of shape "
            f"{tuple(x.shape)}; got {tuple(delta.shape)}"
        )


def predict(model, x, batch_size=500):
    """C(x) for every image of x (float [0, 1] or uint8), on x's device."""
    return classify(model, x, None, batch_size)


def asr(model, x, delta, target, batch_size=500):
    """Attack success rate: the fraction of ALL images of x with C(clip(x + delta)) == target
    (images already predicted as the target count, as in the paper: chance is their share).
    delta: [C, H, W] shared or [N, C, H, W] per image; target: int or [N]."""
    _check_delta(x, delta)
    pred = classify(model, x, delta, batch_size)
    return (pred == torch.as_tensor(target, device=pred.device)).float().mean().item()


def asr_many(model, x, deltas, targets, batch_size: int | None = None, desc: str | None = None) -> torch.Tensor:
    """ASR of every shared perturbation deltas[d] ([D, C, H, W]) toward targets[d] on all of x:
    every (perturbation, image) pair goes through the model in batches of `batch_size` (None:
    runtime.device_batch), so D perturbations cost D * len(x) forward passes with no Python loop
    per image. `desc`: a progress bar with that label. [D] on the CPU."""
    dev = device_of(model)
    batch_size = batch_size or device_batch(dev)
    n, d_total = len(x), len(deltas)
    x, deltas = x.to(dev), deltas.to(dev).float()
    targets = torch.as_tensor(targets, device=dev).long()
    hits = torch.zeros(d_total, device=dev)
    with evaluating(model), torch.no_grad(), autocast(dev):
        for k0 in bar(range(0, d_total * n, batch_size), desc=desc, disable=desc is None):
            k = torch.arange(k0, min(k0 + batch_size, d_total * n), device=dev)
            d, i = k // n, k % n
            pred = model((as_float(x[i]) + deltas[d]).clamp(0, 1)).argmax(1)
            hits.index_add_(0, d, (pred == targets[d]).float())
    return (hits / n).cpu()


def fooling_rate(model, x, v, batch_size=500):
    """Part II's fooling rate P(C(clip(x + v)) != C(x)); v: [C, H, W] or [N, C, H, W]."""
    _check_delta(x, v)
    return (classify(model, x, v, batch_size) != classify(model, x, None, batch_size)).float().mean().item()


def shift(delta, i, j):
    """delta translated by i rows and j columns with wraparound (torch.roll on the last two dims)."""
    return torch.roll(delta, shifts=(int(i), int(j)), dims=(-2, -1))


def shifted_asr(model, x, delta, target, shifts, batch_size=500):
    """ASR of shift(delta, i, j) for every (i, j) in `shifts` ([S, 2] or a list of pairs).

    delta: [C, H, W] evaluated on all of x, or [N, C, H, W] each on its own image. All
    (shift, image) pairs run through the model in batches of `batch_size`, the shifted
    copies built by one gather per batch. Returns a float tensor [S] on the CPU."""
    _check_delta(x, delta)
    check_positive("batch_size", batch_size)
    shifts = torch.as_tensor(shifts, dtype=torch.long).reshape(-1, 2)
    dev = device_of(model)
    n, (c, h, w) = len(x), x.shape[1:]
    x, delta, shifts = x.to(dev), delta.to(dev).float(), shifts.to(dev)
    delta = delta[None] if delta.dim() == 3 else delta
    target = torch.as_tensor(target, device=dev).long().expand(n)
    hits = torch.zeros(len(shifts), device=dev)
    with evaluating(model), torch.no_grad(), autocast(dev):
        for k0 in range(0, len(shifts) * n, batch_size):
            k = torch.arange(k0, min(k0 + batch_size, len(shifts) * n), device=dev)
            s, i = k // n, k % n
            rows = (torch.arange(h, device=dev) - shifts[s, :1]) % h  # roll: out[r] = in[r - shift]
            cols = (torch.arange(w, device=dev) - shifts[s, 1:]) % w
            d = delta[i if len(delta) > 1 else torch.zeros_like(i)]
            d = d[
                torch.arange(len(k), device=dev)[:, None, None, None],
                torch.arange(c, device=dev)[:, None, None],
                rows[:, None, :, None],
                cols[:, None, None, :],
            ]
            pred = model((as_float(x[i]) + d).clamp(0, 1)).argmax(1)
            hits.index_add_(0, s, (pred == target[i]).float())
    return (hits / n).cpu()


def patch(delta, top, left, size):
    """delta with everything outside the size x size square at (top, left) set to zero."""
    h, w = delta.shape[-2:]
    if size < 1 or top < 0 or left < 0 or top + size > h or left + size > w:
        raise ValueError(f"patch (top={top}, left={left}, size={size}) must lie inside the {h}x{w} image")
    out = torch.zeros_like(delta)
    out[..., top : top + size, left : left + size] = delta[..., top : top + size, left : left + size]
    return out


def random_patches(n, size, image_size, seed):
    """n uniformly random (top, left) corners of size x size squares inside an image_size square: [n, 2]."""
    if not 1 <= size <= image_size:
        raise ValueError(f"size must be in [1, image_size={image_size}]; got {size}")
    return torch.randint(0, image_size - size + 1, (n, 2), generator=generator(seed))


def visualise(delta):
    """[C, H, W] perturbation -> H x W x C numpy image in [0, 1]: clip every value to +-3 sigma
    (sigma: std over all channels and pixels), then map [-3 sigma, 3 sigma] linearly to [0, 1],
    so zero is mid-grey and the scale is the same for every channel (colours stay honest)."""
    if delta.dim() != 3:
        raise ValueError(f"delta must be [C, H, W]; got shape {tuple(delta.shape)}")
    d = delta.detach().float().cpu()
    sigma = d.std().clamp_min(1e-12)
    return ((d.clamp(-3 * sigma, 3 * sigma) / (6 * sigma)) + 0.5).permute(1, 2, 0).numpy()
