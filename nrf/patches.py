"""Local patches of a perturbation: cut, scored alone, ranked (PAPER.md I-F3, I-F5 b/c).

Random square patches are cut out of each target's universal perturbation (zero elsewhere)
and each patch alone is scored by its attack success rate (ASR). For l2 every patch is first
rescaled to the largest patch norm of its perturbation, so patches compete on what they
contain, not on how much of the budget they happen to hold. `score` is cached in the store:
the Locality page ranks the patches, the Gallery zooms on the best one, the Scaling page
scales the best and worst ones.
"""

import torch

from . import attacks, store
from .options import Option
from .runtime import generator

PATCH_FRACTION = 80 / 224  # the paper's 80 x 80 patches on 224 px ImageNet-M10 images

# The patch-scoring options. The paper cuts 64 patches and counts all test images; smoke keeps
# the CPU time of 10 targets x patches x images to about a minute.
OPTIONS = [
    Option("n_patches", {"smoke": 16, "medium": 32, "paper": 64}, "random patches per perturbation", kind="int", low=1),
    Option(
        "patch_size",
        None,
        "patch side in pixels (null: the paper's 80/224 of the image side, 11 px on CIFAR-10)",
        kind="int",
        low=1,
        optional=True,
    ),
    Option(
        "n_eval",
        {"smoke": 100, "medium": 1000, "paper": None},
        "test images each patch is scored on (null: all)",
        kind="int",
        low=1,
        optional=True,
    ),
    Option("patch_seed", 0, "seed of the patch corners and of the scored test images", kind="int"),
]


def default_size(image_size: int) -> int:
    """The paper's patch side as a fraction of the image side (11 px on 32 px CIFAR-10)."""
    return max(1, round(PATCH_FRACTION * image_size))


def settings(cfg: dict, image_size: int, n_test: int) -> dict:
    """The patch options of a section's resolved options, checked against the data."""
    size = default_size(image_size) if cfg["patch_size"] is None else cfg["patch_size"]
    if size > image_size:
        raise ValueError(f"option patch_size must be at most the image side {image_size}, got {size}")
    if cfg["n_eval"] is not None and cfg["n_eval"] > n_test:
        raise ValueError(f"option n_eval must be at most the {n_test} test images, got {cfg['n_eval']}")
    return {"n_patches": cfg["n_patches"], "patch_size": size, "n_eval": cfg["n_eval"], "patch_seed": cfg["patch_seed"]}


def masks(corners: torch.Tensor, size: int, image_size: int) -> torch.Tensor:
    """[P, 1, H, W] float masks, 1 inside each size x size square at corners [P, 2] (top, left)."""
    r = torch.arange(image_size)
    rows = (r >= corners[:, :1]) & (r < corners[:, :1] + size)  # [P, H]
    cols = (r >= corners[:, 1:]) & (r < corners[:, 1:] + size)  # [P, W]
    return (rows[:, :, None] & cols[:, None, :]).float()[:, None]


def cut(delta: torch.Tensor, corners: torch.Tensor, size: int, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of one perturbation [C, H, W], zero outside their square: ([P, C, H, W], l2 norms [P]
    before rescaling). For l2 each patch is rescaled to the largest patch norm (PAPER.md, I-F3);
    that norm is at most ||delta||, so every patch stays inside the eps-ball."""
    patches = delta[None] * masks(corners, size, delta.shape[-1]).to(delta.device)
    norms = patches.flatten(1).norm(dim=1)
    if norm == "l2":
        patches = patches * (norms.max() / norms.clamp_min(1e-12)).view(-1, 1, 1, 1)
    return patches, norms


def score(
    model,
    model_spec: dict,
    universal: dict,
    test_data,
    *,
    norm: str,
    n_patches: int,
    patch_size: int,
    n_eval: int | None,
    patch_seed: int,
) -> dict:
    """Score random patches of every universal perturbation in `universal` (a universals.per_target
    result) on `model` (recipe `model_spec`), from the store or computed:

    {"corners" [P, 2], "size", "eval_index" [n], "norms" [T, P] (l2, before rescaling),
     "asr" [T, P], "full" [T] (ASR of the whole perturbation on the same images),
     "chance" [T] (share of those images the model predicts as the target unperturbed)}.
    The same corners serve every target, so a location can be compared across classes.
    """
    deltas, targets = universal["deltas"], list(universal["targets"])
    params = {
        "model": model_spec,
        "test": test_data.identity,
        "targets": targets,
        "norm": norm,
        "deltas": store.digest(deltas),
        "n_patches": n_patches,
        "patch_size": patch_size,
        "n_eval": n_eval,
        "patch_seed": patch_seed,
    }

    def compute(_workdir) -> dict:
        n_test, side = len(test_data), deltas.shape[-1]
        pick = (
            torch.arange(n_test)
            if n_eval is None
            else torch.randperm(n_test, generator=generator(patch_seed))[:n_eval].sort().values
        )
        x = test_data.x[pick]
        corners = attacks.random_patches(n_patches, patch_size, side, patch_seed)
        cuts = [cut(d, corners, patch_size, norm) for d in deltas]
        patches = torch.cat([p for p, _ in cuts])  # [T * P, C, H, W]
        labels = [t for t in targets for _ in range(n_patches)] + targets
        asr = attacks.asr_many(model, x, torch.cat([patches, deltas]), labels, desc=f"patches, {norm}")
        clean = attacks.predict(model, x)
        t = len(targets)
        return {
            "corners": corners,
            "size": patch_size,
            "eval_index": pick,
            "norms": torch.stack([n for _, n in cuts]),
            "asr": asr[: t * n_patches].view(t, n_patches),
            "full": asr[t * n_patches :],
            "chance": torch.tensor([(clean == c).float().mean().item() for c in targets]),
        }

    return store.fetch("patches", params, compute)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-d tensors, ties given their average rank (ASRs on a
    few hundred images tie often). nan when either is constant."""

    def ranks(v):
        _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
        start = counts.cumsum(0) - counts
        return (start + (counts - 1) / 2).double()[inverse]

    ra, rb = ranks(a) - ranks(a).mean(), ranks(b) - ranks(b).mean()
    denom = (ra.square().sum() * rb.square().sum()).sqrt()
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")
