"""Section "Locality" (I-F3, I-F14, I-F15): which local patches of a universal perturbation
carry its attack signal.

Random square patches are cut out of each target's universal perturbation (zero elsewhere)
and each patch alone is scored by its attack success rate (ASR). For l2 every patch is first
rescaled to the largest patch norm of its perturbation, so patches compete on what they
contain, not on how much of the budget they happen to hold. `score_patches` is cached in the
store and shared: the Gallery zooms on the best patch, the Scaling section scales the best
and worst ones.
"""

import hashlib

import torch

from .. import attacks, profiles, store, universals, zoo
from ..runtime import default_device, generator

# Patches per perturbation and test images each patch is scored on (None: the whole test
# split), per profile. The paper cuts 64 patches and counts all test images; smoke keeps the
# CPU time of 10 targets x patches x images to about a minute.
DEFAULTS = {
    "smoke": {"n_patches": 16, "n_eval": 100},
    "paper": {"n_patches": 64, "n_eval": None},
}
PATCH_FRACTION = 80 / 224  # the paper's 80 x 80 patches on 224 px ImageNet-M10 images
DEFAULT_EPS = {"l2": 1.0, "linf": 8 / 255}  # CIFAR-10 threat models (PAPER.md)
DEFAULT_TARGET = "dog"  # I-F3's single target: a class ImageNet-M10 shares, fixed up front
EXTRAS = {"smoke": False, "paper": True}  # also score the other norm (I-F15 beside I-F14)


def default_patch_size(image_size: int) -> int:
    """The paper's patch side as a fraction of the image side (11 px on 32 px CIFAR-10)."""
    return max(1, round(PATCH_FRACTION * image_size))


def threat(cfg: dict, norm: str | None, eps: float | None) -> tuple[str, float]:
    """(norm, eps) of a Part I section: the profile's threat model, or DEFAULT_EPS for the other norm."""
    norm = cfg["norm"] if norm is None else norm
    if norm not in profiles.NORMS:
        raise ValueError(f"norm must be one of {profiles.NORMS}, got {norm!r}")
    if eps is None:
        eps = cfg["eps"] if norm == cfg["norm"] else DEFAULT_EPS[norm]
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return norm, float(eps)


def check_solver(profile: str, solver: dict | None) -> dict:
    """Overrides of universals.SOLVER[profile], checked by name (per_target checks the values)."""
    solver = dict(solver or {})
    unknown = set(solver) - set(universals.SOLVER[profile])
    if unknown:
        raise ValueError(f"solver may only set {sorted(universals.SOLVER[profile])}, got {sorted(unknown)}")
    return solver


def class_index(name_or_index, classes: list[str], what: str) -> int:
    """A class given by name or index, checked against the data's classes."""
    if isinstance(name_or_index, str) and name_or_index in classes:
        return classes.index(name_or_index)
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool) and 0 <= name_or_index < len(classes):
        return name_or_index
    raise ValueError(f"{what} must be a class name in {classes} or an index in [0, {len(classes)}), got {name_or_index!r}")


def class_indices(targets, classes: list[str]) -> list[int]:
    """A `targets` parameter (class names or indices; None: every class) as distinct indices."""
    if targets is None:
        return list(range(len(classes)))
    if not isinstance(targets, (list, tuple)):
        raise ValueError(f"targets must be a list of class names or indices, got {targets!r}")
    picked = [class_index(t, classes, "targets") for t in targets]
    if not picked or len(set(picked)) != len(picked):
        raise ValueError(f"targets must be distinct classes, at least one, got {targets!r}")
    return picked


def patch_options(profile: str, image_size: int, n_test: int, n_patches=None, patch_size=None, n_eval=None,
                  patch_seed=None) -> dict:
    """The patch-scoring options: the profile's DEFAULTS with overrides, checked."""
    opts = {**DEFAULTS[profile], "patch_size": default_patch_size(image_size), "patch_seed": 0}
    given = {"n_patches": n_patches, "patch_size": patch_size, "n_eval": n_eval, "patch_seed": patch_seed}
    opts.update({k: v for k, v in given.items() if v is not None})
    if not isinstance(opts["n_patches"], int) or opts["n_patches"] < 1:
        raise ValueError(f"n_patches must be a positive integer, got {opts['n_patches']!r}")
    if not isinstance(opts["patch_size"], int) or not 1 <= opts["patch_size"] <= image_size:
        raise ValueError(f"patch_size must be an integer in [1, {image_size}], got {opts['patch_size']!r}")
    if opts["n_eval"] is not None and not (isinstance(opts["n_eval"], int) and 1 <= opts["n_eval"] <= n_test):
        raise ValueError(f"n_eval must be None (all test images) or an integer in [1, {n_test}], got {opts['n_eval']!r}")
    if not isinstance(opts["patch_seed"], int):
        raise ValueError(f"patch_seed must be an integer, got {opts['patch_seed']!r}")
    return opts


def fingerprint(deltas: torch.Tensor) -> str:
    """A short content hash of perturbations, so results derived from them are keyed by them."""
    return hashlib.sha256(deltas.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


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


def score_patches(model, model_spec: dict, universal: dict, test_data, *, norm: str, n_patches: int,
                  patch_size: int, n_eval: int | None, patch_seed: int, progress: bool = True, root=None) -> dict:
    """Score random patches of every universal perturbation in `universal` (a universals.per_target
    result) on `model` (recipe `model_spec`), from the store or computed:

    {"corners" [P, 2], "size", "eval_index" [n], "norms" [T, P] (l2, before rescaling),
     "asr" [T, P], "full" [T] (ASR of the whole perturbation on the same images),
     "chance" [T] (share of those images the model predicts as the target unperturbed)}.
    The same corners serve every target, so a location can be compared across classes.
    """
    deltas, targets = universal["deltas"], list(universal["targets"])
    params = {"model": model_spec, "test": test_data.identity, "targets": targets, "norm": norm,
              "deltas": fingerprint(deltas),
              "n_patches": n_patches, "patch_size": patch_size, "n_eval": n_eval, "patch_seed": patch_seed}

    def compute(_workdir) -> dict:
        n_test, side = len(test_data), deltas.shape[-1]
        pick = torch.arange(n_test) if n_eval is None else torch.randperm(n_test, generator=generator(patch_seed))[:n_eval].sort().values
        x = test_data.x[pick]
        corners = attacks.random_patches(n_patches, patch_size, side, patch_seed)
        cuts = [cut(d, corners, patch_size, norm) for d in deltas]
        patches = torch.cat([p for p, _ in cuts])  # [T * P, C, H, W]
        asr = attacks.asr_many(model, x, torch.cat([patches, deltas]), [t for t in targets for _ in range(n_patches)] + targets,
                       batch_size=4096 if next(model.parameters()).is_cuda else 1000, progress=progress)
        clean = attacks.predict(model, x)
        t = len(targets)
        return {"corners": corners, "size": patch_size, "eval_index": pick,
                "norms": torch.stack([n for _, n in cuts]), "asr": asr[: t * n_patches].view(t, n_patches),
                "full": asr[t * n_patches:], "chance": torch.tensor([(clean == c).float().mean().item() for c in targets])}

    return {**store.fetch("locality", params, compute, root), "hardware": store.meta("locality", params, root)["hardware"]}


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


def run(profile: str = "smoke", *, norm=None, eps=None, target=None, targets=None, extras=None, n_patches=None,
        patch_size=None, n_eval=None, patch_seed=None, solver=None, device=None, progress: bool = True,
        **overrides) -> dict:
    """Score the patches of the natural ResNet-18's universal perturbations (one per target).

    norm / eps: the threat model (None: the profile's l2 eps; linf defaults to 8/255).
    target: the class of I-F3 (name or index). targets: the classes of I-F14 (None: all).
    extras: also score the other norm at its default eps (I-F15; None: the profile's EXTRAS).
    n_patches, patch_size, n_eval, patch_seed: the patch scoring (None: DEFAULTS[profile]).
    solver: overrides of universals.SOLVER[profile] (base_size, epochs, step, batch_size).
    overrides: profile settings of the models (data, width, epochs, seed, ...).
    """
    cfg = profiles.settings(profile, **overrides)
    norm, eps = threat(cfg, norm, eps)
    extras = EXTRAS[profile] if extras is None else extras
    if not isinstance(extras, bool):
        raise ValueError(f"extras must be True, False or None, got {extras!r}")
    solver = check_solver(profile, solver)
    train_data, test_data = zoo.load_data(cfg["data"])
    classes = train_data.classes
    target = class_index(DEFAULT_TARGET if target is None else target, classes, "target")
    targets = class_indices(targets, classes)
    if target not in targets:
        raise ValueError(f"target {classes[target]!r} must be one of targets {[classes[t] for t in targets]}")
    opts = patch_options(profile, train_data.x.shape[-1], len(test_data), n_patches, patch_size, n_eval, patch_seed)

    device = device or default_device()
    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
    threats = [(norm, eps)] + ([threat(cfg, o, None) for o in profiles.NORMS if o != norm] if extras else [])
    results, hardware = {}, {meta["provenance"]["hardware"]}
    for nm, ep in threats:
        uni = universals.per_target(model, spec, train_data, test_data, profile=profile, norm=nm, eps=ep,
                                    targets=targets, seed=cfg["seed"], progress=progress, **solver)
        scores = score_patches(model, spec, uni, test_data, norm=nm, progress=progress, **opts)
        rho = [spearman(n, a) for n, a in zip(scores["norms"], scores["asr"])]
        results[nm] = {"norm": nm, "eps": ep, "deltas": uni["deltas"], "universal_asr": torch.tensor(uni["asr"]),
                       "scores": scores, "rho": torch.tensor(rho)}
        hardware |= {scores["hardware"], uni["hardware"]}
    return {"cfg": cfg, "train": train_data, "test": test_data, "classes": classes, "target": target,
            "targets": targets, "norm": norm, "results": results, "options": opts, "hardware": hardware}
