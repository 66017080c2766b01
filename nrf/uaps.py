"""Untargeted universal perturbations (Part II, CVPR 2017): Algorithm 1 from the store, and
what scores them.

Both Part II sections (uap, uap_analysis) attack the book's models with the perturbations of
Algorithm 1 (`algorithm1.uap`), solved on a seeded set X of training images and scored by their
fooling rate P(C(x + v) != C(x)) on held-out test images. Each perturbation is one store
artifact keyed by what made it (`universal`), so the two sections and later builds share it.
The solver's options are `OPTIONS`.

Radii. The 2017 paper used xi = 2000 (l2) and 10 (linf) on [0, 255] ImageNet images of
224 x 224 x 3 pixels. linf is a per-pixel bound: 10 / 255 carries over unchanged. An l2 radius
scales with the square root of the pixel count: 2000 / 255 / sqrt(224 * 224 * 3) is a
root-mean-square of 0.020 per pixel, which on 32 x 32 x 3 CIFAR-10 images is an l2 radius
of 1.12; we take 1.0, the CIFAR-10 l2 threat model of Part I, so both parts share a scale.
"""

import math
import time

import torch

from . import algorithm1, attacks, store
from .data import Data, to_float
from .options import Option
from .runtime import device_batch, generator

XI = {"l2": 1.0, "linf": 10 / 255}
IMAGENET_XI_L2, IMAGENET_PIXELS = 2000 / 255, 224 * 224 * 3  # the 2017 paper's l2 radius, in [0, 1] units
OVERSHOOT = 0.02  # DeepFool's overshoot in Algorithm 1, as in the authors' code
CHANCE_SEED = 12345  # the random-direction baseline of the uap section, one draw per norm
# How every page names the book's models (zoo.ROLES): the one place for their display names.
ROLE_NAMES = {
    "natural": "ResNet-18",
    "natural_seed1": "ResNet-18 (seed 1)",
    "robust": "ResNet-18 (robust)",
    "vgg16": "VGG16",
    "vgg11": "VGG11",
}

# How Algorithm 1 runs: X has n_train images, at most max_passes passes over it, stopping once
# it fools a share 1 - delta of X (the authors' delta = 0.2); uap_batch images of X go through
# DeepFool together in the batched version (1 is the faithful per-image loop).
OPTIONS = [
    Option(
        "xi_l2",
        XI["l2"],
        "l2 radius of the perturbations, pixel units (1.0: the 2017 paper's 2000/255 on "
        "224 px images, rescaled to 32 px and rounded to Part I's l2 radius)",
        low=1e-12,
    ),
    Option("xi_linf", XI["linf"], "linf radius of the perturbations (the 2017 paper's 10/255)", low=1e-12),
    Option(
        "n_train",
        {"smoke": 100, "medium": 500, "paper": 1000},
        "training images in X, the set Algorithm 1 is solved on",
        kind="int",
        low=1,
    ),
    Option(
        "max_passes", {"smoke": 3, "medium": 5, "paper": 10}, "passes of Algorithm 1 over X at most", kind="int", low=1
    ),
    Option("delta", 0.2, "Algorithm 1 stops once it fools a share 1 - delta of X (below 1)", low=0, high=0.999),
    Option(
        "uap_batch",
        {"smoke": 32, "medium": 128, "paper": 128},
        "images of X per DeepFool batch in batched Algorithm 1",
        kind="int",
        low=1,
    ),
    Option("uap_seed", 0, "seed of the draw of X, of the shuffles and of the random perturbations", kind="int"),
]


def xi(cfg: dict) -> dict:
    """{norm: radius} of a section's resolved options."""
    return {"l2": cfg["xi_l2"], "linf": cfg["xi_linf"]}


def solver(cfg: dict) -> dict:
    """Algorithm 1's settings of a section's resolved options (all but the norm, radius and X)."""
    return {
        "max_passes": cfg["max_passes"],
        "delta": cfg["delta"],
        "batch_size": cfg["uap_batch"],
        "seed": cfg["uap_seed"],
    }


def imagenet_equivalent(pixels: int) -> dict:
    """The 2017 paper's l2 radius carried to images of `pixels` coordinates at the same
    root-mean-square change per coordinate: {"rms", "l2"}."""
    rms = IMAGENET_XI_L2 / math.sqrt(IMAGENET_PIXELS)
    return {"rms": rms, "l2": rms * math.sqrt(pixels)}


def pick(data: Data, n: int, seed: int) -> torch.Tensor:
    """Indices of the first n of a seeded permutation of `data`: sets of growing n are nested."""
    if not 0 < n <= len(data):
        raise ValueError(f"asked for {n} images of {data.identity}, which has {len(data)}")
    return torch.randperm(len(data), generator=generator(seed))[:n]


def eval_index(test_data: Data, n_eval: int | None) -> torch.Tensor:
    """The evaluation images: the whole test split, or a seeded draw of n_eval of it (the split is
    sorted by class, so a prefix would not do)."""
    return torch.arange(len(test_data)) if n_eval is None else pick(test_data, n_eval, 0)


def universal(
    model,
    spec: dict,
    train_data: Data,
    *,
    n: int,
    norm: str,
    xi: float,
    max_passes: int,
    delta: float,
    batch_size: int,
    seed: int,
) -> tuple[dict, str]:
    """Batched Algorithm 1 on the first n images of a seeded draw of the training set, from the
    store: ({"v" [C,H,W], "history" (fooling rate on X after each pass), "index", "seconds"},
    the artifact's key, by which results derived from v are keyed)."""
    params = {
        "model": spec,
        "n": n,
        "norm": norm,
        "xi": xi,
        "max_passes": max_passes,
        "delta": delta,
        "batch_size": batch_size,
        "overshoot": OVERSHOOT,
        "seed": seed,
    }

    def compute(_workdir):
        index = pick(train_data, n, seed)
        start = time.perf_counter()
        v, history = algorithm1.uap(
            model,
            train_data.x[index],
            xi=xi,
            norm=norm,
            delta=delta,
            max_passes=max_passes,
            overshoot=OVERSHOOT,
            batched=True,
            batch_size=batch_size,
            seed=seed,
            desc=f"Algorithm 1, {norm}, n={n}",
        )
        return {"v": v.cpu(), "history": list(history), "index": index, "seconds": time.perf_counter() - start}

    result = store.fetch("uap-perturbation", params, compute)
    return result, store.digest(result["v"])


def random_direction(norm: str, radius: float, shape, generator) -> torch.Tensor:
    """Random perturbations [D, C, H, W] of the given norm: l2, uniform on the sphere (normalised
    Gaussian); linf, uniform random signs (random vertices of the cube, the largest in l2)."""
    z = torch.randn(shape, generator=generator)
    if norm == "linf":
        return radius * z.sign()
    return radius * z / z.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def rescale(v: torch.Tensor, norm: str, radius: float) -> torch.Tensor:
    """v scaled to norm `radius`."""
    size = v.norm() if norm == "l2" else v.abs().max()
    return v * (radius / size.clamp_min(1e-12))


def perturbed_labels(model, x: torch.Tensor, vs) -> torch.Tensor:
    """C(clip(x + v)) [P, N] for every v of vs ([P, C, H, W] or a list), x float on the model's device."""
    batch = device_batch(x.device)
    return torch.stack([attacks.classify(model, x, v, batch) for v in vs])


def fooling(model, x: torch.Tensor, clean: torch.Tensor, vs) -> torch.Tensor:
    """Fooling rate [P] on images x (float, on the model's device; clean = C(x)) of each v in vs."""
    return (perturbed_labels(model, x, vs) != clean).float().mean(1).cpu()


def test_images(test_data: Data, n_eval: int | None, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x float on `device`, y) of the evaluation images."""
    index = eval_index(test_data, n_eval)
    return to_float(test_data.x[index].to(device)), test_data.y[index]


def dominant_labels(counts) -> dict:
    """From counts [true class][label after the perturbation] of fooled images: {"edges": {i: j},
    j the label (other than i) most fooled images of class i get; "received": images per label}."""
    k = len(counts)
    edges = {}
    for i in range(k):
        row = [0 if j == i else counts[i][j] for j in range(k)]
        if sum(row):
            edges[i] = max(range(k), key=lambda j: row[j])
    return {"edges": edges, "received": [sum(counts[i][j] for i in range(k)) for j in range(k)]}
