"""Several universal perturbations for one target, pushed apart in representation space (I-F17).

Random starts alone give perturbations that may all land on the same features. Here n
perturbations share one base set and one mini-batch order and are solved together; each step
descends, for every delta_i, its mean cross-entropy toward the target plus `weight` times an
orthogonality penalty: at each chosen layer l, v_il = phi_l(x + delta_i) - phi_l(x) is the
change delta_i induces in that layer's activations of image x (flattened), and the penalty is
the squared cosine cos^2(v_il, v_jl), averaged over pairs i < j, the images of the mini-batch
and the layers. Squared, so that anti-aligned changes count as alike too. With weight 0 the n
runs do not interact and reproduce `attacks.perturb` with random starts exactly (same draws).

`similarity` says how alike the results are three ways: in pixels (where their patterns lie),
in magnitude spectra (what they are made of, wherever it lies: the paper's penalised
perturbations "remain similar, but with changes in spatial arrangements") and in the
representation space that the penalty acts on.
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from . import attacks
from .runtime import autocast, bar, device_of, evaluating, generator

# Layers of the CIFAR ResNet-18 (models._resnet18_cifar) by name: the output of each of its
# four residual stages (indices into Net.body) and the penultimate features.
LAYERS = {"layer1": 5, "layer2": 7, "layer3": 9, "layer4": 11, "features": 13}
BANDS = 8  # spectrum_cosine's frequency bands per axis (blocks of 4 x 4 frequencies on 32 px)


def check_layers(layers) -> list[str]:
    """Layer names of LAYERS, distinct and at least one."""
    if (
        not isinstance(layers, (list, tuple))
        or not layers
        or len(set(layers)) != len(layers)
        or not all(name in LAYERS for name in layers)
    ):
        raise ValueError(f"layers must be a non-empty list of distinct names from {list(LAYERS)}, got {layers!r}")
    return list(layers)


@contextmanager
def recording(model, layers):
    """While inside, every forward pass of `model` leaves the outputs of `layers` in the yielded dict."""
    if model.config["arch"] != "resnet18":
        raise ValueError(f"representation layers are defined for the CIFAR resnet18, got {model.config['arch']!r}")
    acts = {}

    def keep(name):
        return lambda _module, _inputs, out: acts.__setitem__(name, out)

    handles = [model.body[LAYERS[name]].register_forward_hook(keep(name)) for name in check_layers(layers)]
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()


def pairwise_cosine(adv: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """adv [n, B, ...] activations of x + delta_i, clean [B, ...] those of x: the cosine between
    every two changes adv[i] - clean and adv[j] - clean, per image: [B, n, n]."""
    v = F.normalize((adv - clean[None]).flatten(2).transpose(0, 1), dim=2, eps=1e-12)  # [B, n, D]
    return v @ v.transpose(1, 2)


def changes(acts: dict, clean: dict, name: str, n: int) -> torch.Tensor:
    """Per-image cosines [B, n, n] between the changes at layer `name` of a forward pass of n
    perturbed copies of a batch (acts, [n * B, ...]) against that of the clean batch (clean, [B, ...])."""
    return pairwise_cosine(acts[name].float().view(n, -1, *clean[name].shape[1:]), clean[name])


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The entries i < j of the last two (square) dimensions, flattened: [..., n (n - 1) / 2]."""
    i, j = torch.triu_indices(m.shape[-1], m.shape[-1], offset=1, device=m.device)
    return m[..., i, j]


def solve(
    model,
    x,
    target: int,
    *,
    n: int,
    norm: str,
    eps: float,
    step_size: float,
    epochs: int,
    batch_size: int,
    weight: float,
    layers,
    seed: int = 0,
    desc: str | None = None,
):
    """n targeted universal perturbations on base set x ([K, C, H, W], float or uint8) toward
    `target`, from random starts, each step descending mean CE + weight * penalty (module doc).

    The mini-batch orders and random starts are drawn exactly as `attacks.perturb` draws them
    for x repeated n times (group_size K, random_start=True, the same seed and batch size), so
    weight = 0 gives its result. `desc`: a progress bar over the epochs with that label.
    Returns (deltas [n, C, H, W], curve [epochs, n]: share of the base set sent to the target
    during each epoch, penalty [epochs]: its mean per epoch), on x's device."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (pairs of perturbations), got {n!r}")
    if not weight >= 0:
        raise ValueError(f"weight must be >= 0, got {weight!r}")
    if norm not in attacks.NORMS:
        raise ValueError(f"norm must be one of {attacks.NORMS}, got {norm!r}")
    layers = check_layers(layers)
    if x.dim() != 4 or len(x) < 2:
        raise ValueError(f"x must be a base set [K, C, H, W] of K >= 2 images, got shape {tuple(x.shape)}")
    dev = device_of(model)
    k = len(x)
    b = min(batch_size, k)
    gen = generator(seed, dev)
    orders = torch.stack([torch.randperm(k, generator=gen, device=dev) for _ in range(epochs)]) if b < k else None
    delta = attacks.random_in_ball((n, *x.shape[1:]), norm, eps, gen, dev)
    xf = attacks.as_float(x).to(dev)
    labels = torch.full((n * b,), int(target), device=dev)
    curve, penalties = torch.zeros(epochs, n, device=dev), torch.zeros(epochs, device=dev)
    with evaluating(model), recording(model, layers) as acts:
        for e in bar(range(epochs), desc=desc, disable=desc is None):
            hits = torch.zeros(n, device=dev)
            for s in range(0, k, b):
                xb = xf if orders is None else xf[orders[e, s : s + b]]
                with torch.no_grad(), autocast(dev):
                    model(xb)
                clean = {name: a.float() for name, a in acts.items()}
                delta.requires_grad_(True)
                xadv = (xb[None] + delta[:, None]).clamp(0, 1).flatten(0, 1)
                with autocast(dev):
                    logits = model(xadv).float()
                ce = F.cross_entropy(logits, labels[: len(xadv)], reduction="none").view(n, -1).mean(1).sum()
                penalty = torch.stack(
                    [off_diagonal(changes(acts, clean, name, n)).pow(2).mean() for name in layers]
                ).mean()
                (grad,) = torch.autograd.grad(ce + weight * penalty if weight else ce, delta)
                hits += (logits.detach().argmax(1) == labels[: len(xadv)]).view(n, -1).sum(1)
                penalties[e] += penalty.detach() * len(xb) / k
                delta = attacks.project(delta.detach() - step_size * attacks.step_direction(grad, norm), norm, eps)
            curve[e] = hits / k
    return delta.to(x.device), curve.to(x.device), penalties.to(x.device)


def cosines(vectors: torch.Tensor) -> torch.Tensor:
    """Cosine between every two rows of vectors [n, ...] (flattened): [n, n]."""
    flat = F.normalize(vectors.flatten(1).float(), dim=1, eps=1e-12)
    return flat @ flat.T


def spectrum_cosine(deltas: torch.Tensor) -> torch.Tensor:
    """How alike the perturbations deltas [n, C, H, W] are whatever the arrangement of their
    patterns: the cosine [n, n] between their centred band spectra. Per channel, the modulus of
    the 2-D discrete Fourier transform, averaged over BANDS x BANDS blocks of neighbouring
    frequencies; concatenated over channels, minus its mean. A shift moves only the phases, so a
    perturbation and a (circularly) shifted copy score 1: the score says which frequencies,
    orientations and colours carry the energy, not where. Averaged in bands, so that the speckle
    that the exact positions of a pattern's elements leave in the spectrum does not count;
    centred, so that two independent noises score about 0 (uncentred moduli would score near 1)."""
    m = F.adaptive_avg_pool2d(torch.fft.fft2(deltas.float()).abs(), BANDS).flatten(1)
    return cosines(m - m.mean(1, keepdim=True))


def similarity(model, x, deltas: torch.Tensor, layers, batch_size: int = 64) -> dict:
    """How alike the perturbations deltas [n, C, H, W] are: {"pixel": [n, n] cosine between the
    deltas themselves (where their patterns lie), "spectrum": [n, n] `spectrum_cosine` (what
    they are made of, wherever it lies), "representation": [L, n, n] cosine between the changes
    they induce at each layer, averaged over the images of x}, on the CPU."""
    layers = check_layers(layers)
    dev = device_of(model)
    pixel, spectrum = cosines(deltas.cpu()), spectrum_cosine(deltas.cpu())
    deltas = deltas.to(dev).float()
    total = torch.zeros(len(layers), len(deltas), len(deltas), device=dev)
    with evaluating(model), recording(model, layers) as acts, torch.no_grad(), autocast(dev):
        for i in range(0, len(x), batch_size):
            xb = attacks.as_float(x[i : i + batch_size].to(dev))
            model(xb)
            clean = {name: a.float() for name, a in acts.items()}
            model((xb[None] + deltas[:, None]).clamp(0, 1).flatten(0, 1))
            for li, name in enumerate(layers):
                total[li] += changes(acts, clean, name, len(deltas)).sum(0)
    return {"pixel": pixel, "spectrum": spectrum, "representation": (total / len(x)).cpu()}
