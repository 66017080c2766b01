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
from .runtime import device_batch, device_of, generator

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
    # The radius sweep (`sweep`): Algorithm 1 at multiples of two yardsticks, the 2017 paper's radius
    # carried over at its per-pixel rms (`imagenet_equivalent`; linf: 10/255) and the model's median
    # DeepFool norm, on its own X (sweep_n images, at most sweep_passes passes) and scored on sweep_eval
    # held-out images. Medium: 3 models x 2 norms x 11 radii, about 15 minutes on 2 CPU cores; smoke (CI)
    # runs one radius per yardstick, to exercise the code, not to decide.
    Option(
        "sweep_rms",
        {"smoke": [2.0], "medium": [0.5, 1.0, 2.0, 4.0, 8.0], "paper": [0.5, 1.0, 2.0, 4.0, 8.0]},
        "sweep radii as multiples of the 2017 paper's radius at its per-pixel rms (linf: 10/255)",
        kind="floats",
        low=1e-12,
    ),
    Option(
        "sweep_deepfool",
        {"smoke": [16.0], "medium": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0], "paper": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]},
        "sweep radii as multiples of the model's median DeepFool norm on held-out images",
        kind="floats",
        low=1e-12,
    ),
    Option(
        "sweep_n", {"smoke": 40, "medium": 200, "paper": 1000}, "training images in X of the sweep", kind="int", low=1
    ),
    Option(
        "sweep_passes",
        {"smoke": 2, "medium": 10, "paper": 10},
        "passes of Algorithm 1 at most in the sweep",
        kind="int",
        low=1,
    ),
    Option(
        "sweep_eval",
        {"smoke": 500, "medium": 2000, "paper": 10000},
        "held-out test images the sweep is scored on",
        kind="int",
        low=1,
    ),
    Option(
        "deepfool_n",
        {"smoke": 100, "medium": 500, "paper": 1000},
        "held-out images (the first of sweep_eval's) whose median DeepFool norm is the sweep's yardstick",
        kind="int",
        low=1,
    ),
]
HALF = 0.5  # the rule, fixed before looking: claims are decided at the smallest swept radius fooling this share
RULE = (
    f"the smallest radius of the sweep at which the first model's own perturbation fools at least "
    f"{100 * HALF:.0f}% of the sweep's held-out images"
)


def check_sweep(cfg: dict, n_train: int, n_test: int) -> None:
    """The sweep's sizes against the data, before anything trains: a one-line error naming the option."""
    if cfg["sweep_n"] > n_train:
        raise ValueError(f"option sweep_n must be at most the {n_train} training images, got {cfg['sweep_n']}")
    if cfg["sweep_eval"] > n_test:
        raise ValueError(f"option sweep_eval must be at most the {n_test} test images, got {cfg['sweep_eval']}")
    if cfg["deepfool_n"] > cfg["sweep_eval"]:
        raise ValueError(f"option deepfool_n must be at most sweep_eval ({cfg['sweep_eval']}), got {cfg['deepfool_n']}")


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


def yardstick(norm: str, pixels: int) -> float:
    """The 2017 paper's radius carried to images of `pixels` coordinates: l2 at its per-pixel rms,
    linf (a per-pixel bound already) unchanged."""
    return imagenet_equivalent(pixels)["l2"] if norm == "l2" else XI["linf"]


def median_deepfool(model, x: torch.Tensor, clean: torch.Tensor, norm: str) -> dict:
    """The typical minimal perturbation of held-out images x (float, on the model's device; clean =
    C(x)): DeepFool of `norm` (l2 steps, or linf steps measured in linf), the median `norm` size of
    the steps that changed the label. {"median", "success" (share changed)}."""
    chunk = device_batch(x.device)
    sizes, changed = [], []
    for i in range(0, len(x), chunk):
        r = algorithm1.deepfool(model, x[i : i + chunk], norm=norm)
        after = attacks.predict(model, (x[i : i + chunk] + r).clamp(0, 1), chunk)
        sizes.append(r.flatten(1).norm(p=2 if norm == "l2" else float("inf"), dim=1).cpu())
        changed.append((after != clean[i : i + chunk]).cpu())
    sizes, changed = torch.cat(sizes), torch.cat(changed)
    if not changed.any():
        raise RuntimeError(f"DeepFool ({norm}) changed none of the {len(x)} held-out labels: no yardstick")
    return {"median": sizes[changed].median().item(), "success": changed.float().mean().item()}


def sweep(model, spec: dict, train_data: Data, test_data: Data, cfg: dict, norm: str) -> dict:
    """Fooling rate against radius (II-T1 at every radius): Algorithm 1 on `model` at every multiple
    of the two yardsticks (`yardstick`, the median DeepFool norm), each radius's perturbation and one
    random direction of that norm (`CHANCE_SEED`) scored on the sweep's held-out images. Returns
    {"median_deepfool", "deepfool_success", "radii", "kind" ("rms" or "deepfool"), "multiple",
    "test", "train", "passes", "chance", "v" [R, C, H, W]}, radii ascending."""
    device = device_of(model)
    base = {"model": spec, "test": test_data.identity, "norm": norm, "sweep_eval": cfg["sweep_eval"]}
    x_eval, _ = test_images(test_data, cfg["sweep_eval"], device)
    clean = []

    def labels():
        if not clean:
            clean.append(attacks.predict(model, x_eval, device_batch(device)))
        return clean[0]

    df = store.fetch(
        "uap-deepfool-median",
        {**base, "deepfool_n": cfg["deepfool_n"]},
        lambda _w: median_deepfool(model, x_eval[: cfg["deepfool_n"]], labels()[: cfg["deepfool_n"]], norm),
    )
    unit = yardstick(norm, x_eval[0].numel())
    points = sorted(
        [(m * unit, "rms", m) for m in cfg["sweep_rms"]]
        + [(m * df["median"], "deepfool", m) for m in cfg["sweep_deepfool"]]
    )
    found = [
        universal(
            model,
            spec,
            train_data,
            n=cfg["sweep_n"],
            norm=norm,
            xi=radius,
            max_passes=cfg["sweep_passes"],
            delta=cfg["delta"],
            batch_size=cfg["uap_batch"],
            seed=cfg["uap_seed"],
        )
        for radius, _, _ in points
    ]
    noise = random_direction(norm, 1.0, (1, *x_eval.shape[1:]), generator(CHANCE_SEED))[0]

    def score(_workdir):
        vs = [r["v"].to(device) for r, _ in found]
        return {
            "test": fooling(model, x_eval, labels(), vs).tolist(),
            "chance": fooling(model, x_eval, labels(), [p[0] * noise.to(device) for p in points]).tolist(),
        }

    scored = store.fetch(
        "uap-sweep", {**base, "v": [digest for _, digest in found], "radii": [p[0] for p in points]}, score
    )
    return {
        "median_deepfool": df["median"],
        "deepfool_success": df["success"],
        "radii": [p[0] for p in points],
        "kind": [p[1] for p in points],
        "multiple": [p[2] for p in points],
        "test": scored["test"],
        "train": [r["history"][-1] for r, _ in found],
        "passes": [len(r["history"]) for r, _ in found],
        "chance": scored["chance"],
        "v": torch.stack([r["v"] for r, _ in found]).float(),
    }


def radius_text(norm: str, radius: float) -> str:
    """A radius as the pages write it: l2 in pixel units, linf in 1/255 steps."""
    return f"{radius:.3g}" if norm == "l2" else f"{255 * radius:.3g}/255"


def picked(curve: dict) -> float | None:
    """The radius the claims are decided at (`RULE`): the smallest of curve["radii"] whose held-out
    fooling rate curve["test"] is at least HALF; None where none is (the claims cannot be tested
    at the swept radii)."""
    return next((radius for radius, rate in sorted(zip(curve["radii"], curve["test"])) if rate >= HALF), None)


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
