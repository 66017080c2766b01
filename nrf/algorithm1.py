"""Part II's solver: DeepFool (Moosavi-Dezfooli et al. 2016) and Algorithm 1 of the 2017 paper,
the untargeted universal perturbation grown from DeepFool steps.

Kept apart from nrf/attacks.py (Part I's targeted solver, which training uses) so that the
trained models' code fingerprint does not depend on Part II's solver: changing Algorithm 1
recomputes Part II's perturbations, never the models.
"""

import torch

from nrf.attacks import as_float, check_norm, check_positive, classify, per_sample, predict, project, step_direction
from nrf.runtime import bar, device_of, evaluating, generator


def deepfool(model, x, *, norm="l2", num_candidates=10, overshoot=0.02, max_iter=50):
    """DeepFool (Moosavi-Dezfooli et al. 2016), batched: the small r that sends each clip(x + r)
    across its nearest linearised decision boundary among the top `num_candidates` classes.

    All images run together; the ones already flipped drop out of the active set after each
    iteration (one host sync per iteration, to stop early). Each iteration does one backward
    per candidate class for the whole active batch. l2 steps along w/||w||_2; linf along
    sign(w), with the distance measured in the dual l1 norm. The returned r [N, C, H, W]
    already includes the factor (1 + overshoot). Always fp32, whatever the run's precision: the
    step is a ratio of a logit gap to a gradient norm, both small near the boundary."""
    check_norm(norm)
    if not isinstance(num_candidates, int) or num_candidates < 2:
        raise ValueError(f"num_candidates must be an int >= 2; got {num_candidates!r}")
    if overshoot < 0:
        raise ValueError(f"overshoot must be >= 0; got {overshoot!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1; got {max_iter!r}")
    with evaluating(model) as dev:
        x0 = as_float(x.to(dev))
        with torch.no_grad():
            logits = model(x0).float()
        cand = logits.topk(min(num_candidates, logits.shape[1]), dim=1).indices  # cand[:, 0]: C(x)
        r = torch.zeros_like(x0)
        active = torch.arange(len(x0), device=dev)
        for _ in range(max_iter):
            xa = (x0[active] + (1 + overshoot) * r[active]).clamp(0, 1).requires_grad_(True)
            f = model(xa).float()
            ca = cand[active]
            still = f.argmax(1) == ca[:, 0]
            fc = f.gather(1, ca)
            diff = fc[:, 1:] - fc[:, :1]  # f_k - f_label < 0 until the boundary to k is crossed
            best, best_w = None, None
            for j in range(diff.shape[1]):
                (w,) = torch.autograd.grad(diff[:, j].sum(), xa, retain_graph=j < diff.shape[1] - 1)
                dist = diff[:, j].detach().abs() / w.flatten(1).norm(p=2 if norm == "l2" else 1, dim=1).clamp_min(1e-12)
                if best is None:
                    best, best_w = dist, w
                else:
                    closer = dist < best
                    best, best_w = torch.where(closer, dist, best), torch.where(per_sample(closer, w), w, best_w)
            step = step_direction(best_w, norm) * per_sample(best + 1e-4, best_w)
            r[active] += step * per_sample(still, step)
            active = active[still]
            if len(active) == 0:
                break
    return ((1 + overshoot) * r).to(x.device)


def uap(
    model,
    x,
    *,
    xi,
    norm="l2",
    delta=0.2,
    max_passes=10,
    overshoot=0.02,
    batched=True,
    batch_size=64,
    crossed_only=True,
    seed=0,
    desc=None,
):
    """Algorithm 1 of Moosavi-Dezfooli et al. (2017): an untargeted universal perturbation v,
    ||v||_norm <= xi, grown from the DeepFool steps of the images it does not fool yet.

    v = 0; each pass visits x in a fresh seeded shuffle; for an image with
    C(clip(x_i + v)) == C(x_i), dv = deepfool(clip(x_i + v)) and v = project(v + dv, norm, xi).
    Stops once the fooling rate on x reaches 1 - delta, or after max_passes. As in the
    authors' code, dv is the l2 DeepFool step (at most 10 iterations) for both norms; only
    the projection follows `norm`; and a step is added only where DeepFool crossed the boundary
    within its iterations (`crossed_only`; False adds every step, which lets the steps of images
    DeepFool cannot flip drag v around). batched=False is that per-image loop.

    batched=True takes the shuffle `batch_size` images at a time, runs DeepFool at once on
    those the current v does not fool, then applies their steps one after the other,
    v = project(v + dv_i), in the shuffled order: Algorithm 1's own update, except that
    every dv_i was computed at the v of the start of the batch (so batch_size=1 is the
    faithful loop). Measured on a CIFAR-10 ResNet-18 (width 8, ~50% accuracy; 256 images,
    l2 xi=2, 4 passes, 2 seeds, fooling rate on 1000 held-out images): faithful 0.28, this
    0.23 at batch 32 in a quarter of the time on a CPU; adding the batch's summed steps
    at once scored the same (0.23), their mean far less (0.14: each pass moves v B times less).
    Where it converges: only at radii well above the images' minimal perturbations. On the
    medium CIFAR-10 ResNet-18 (bench/results/uap_convergence.md), whose DeepFool steps are nearly
    orthogonal from image to image (mean |cosine| 0.03), fooling on X wanders around 10% across
    passes at the book's xi (4.7 times the median DeepFool norm) and climbs pass after pass from
    16 times it (to 85-89% of X at 32 times), per-image and batched alike.
    `desc`: a progress bar over the passes with that label.
    Returns (v [C, H, W] on x's device, history: fooling rate on x after each pass)."""
    check_norm(norm)
    check_positive("xi", xi)
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1); got {delta!r}")
    if not isinstance(max_passes, int) or max_passes < 1:
        raise ValueError(f"max_passes must be an int >= 1; got {max_passes!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    if x.dim() != 4:
        raise ValueError(f"x must be [N, C, H, W]; got shape {tuple(x.shape)}")
    dev = device_of(model)
    gen = generator(seed, dev)
    b = batch_size if batched else 1
    clean = predict(model, x).to(dev)
    v = torch.zeros(x.shape[1:], device=dev)
    history = []
    for _ in bar(range(max_passes), desc=desc, disable=desc is None):
        order = torch.randperm(len(x), generator=gen, device=dev)
        for s in range(0, len(x), b):
            idx = order[s : s + b]
            xv = (as_float(x[idx.to(x.device)].to(dev)) + v).clamp(0, 1)
            todo = predict(model, xv, len(xv)) == clean[idx]
            if not todo.any():
                continue
            steps = deepfool(model, xv[todo], norm="l2", overshoot=overshoot, max_iter=10)
            if crossed_only:  # the authors' code adds a step only where DeepFool converged
                steps = steps[predict(model, (xv[todo] + steps).clamp(0, 1), len(steps)) != clean[idx][todo]]
            for dv in steps:
                v = project((v + dv)[None], norm, xi)[0]
        history.append((classify(model, x, v) != clean.to(x.device)).float().mean().item())
        if history[-1] >= 1 - delta:
            break
    return v.to(x.device), history
