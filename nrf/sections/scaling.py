"""Section "Scaling" (I-F5): do universal perturbations rely on non-robust features?

The universal perturbations of the natural ResNet-18 (one per target), and their best and
worst patch (scored by the Locality section), are multiplied by s and measured on that model,
on a second natural model (another seed) and on the robust model. If they carried robust
features, scaling them up would move the robust model too. A universal perturbation made on
the robust model itself at `factor` times the budget is the positive control: it shows what
it takes to move the robust model.
"""

import torch

from .. import attacks, profiles, store, universals, zoo
from ..runtime import default_device, generator
from . import locality

# Per-profile defaults (None in run() means these). scales: multiples of the budget eps at
# which every perturbation is measured (the grid always gets 1, the perturbation as made, and
# `factor`, the robust model's own perturbation at its size). robust_solver: overrides of
# universals.SOLVER for the robust model's perturbation; smoke shrinks its base set (it is
# this section's only gradient computation) and takes smaller batches to keep 16 steps.
DEFAULTS = {
    "smoke": {"scales": [0.5, 1, 2, 3, 5, 8], "factor": 5.0, "n_eval": 50,
              "robust_solver": {"base_size": 128, "epochs": 4, "batch_size": 32}},
    "paper": {"scales": [0.5 * k for k in range(1, 17)], "factor": 5.0, "n_eval": None, "robust_solver": {}},
}
# Which perturbations each model is measured with: every kind on the natural models that the
# natural perturbations come from or transfer to, the robust model's own on robust and natural.
MEASURED = {"natural": ("universal", "best", "worst", "robust"), "natural_seed1": ("universal", "best", "worst"),
            "robust": ("universal", "best", "worst", "robust")}


def best_and_worst(deltas: torch.Tensor, scores: dict, norm: str) -> dict:
    """Each target's highest- and lowest-ASR patch among those scored by locality.score_patches,
    cut (and for l2 rescaled to the largest patch norm) exactly as they were scored."""
    best, worst = scores["asr"].argmax(1), scores["asr"].argmin(1)
    cuts = torch.stack([locality.cut(d, scores["corners"], scores["size"], norm)[0] for d in deltas])  # [T, P, ...]
    rows = torch.arange(len(deltas))
    return {"best": cuts[rows, best], "worst": cuts[rows, worst], "best_corner": scores["corners"][best],
            "worst_corner": scores["corners"][worst], "best_asr": scores["asr"][rows, best],
            "worst_asr": scores["asr"][rows, worst], "size": scores["size"]}


def measure(models: dict, specs: dict, kinds: dict, targets: list[int], test_data, *, grid: list[float],
            n_eval: int | None, seed: int, params: dict, progress: bool) -> dict:
    """ASR of s * kinds[k][t] for every s in `grid`, target t and the models of MEASURED, on
    n_eval seeded test images (None: all): {"asr": {kind: {role: [T, S]}}, "chance": {role: [T]},
    "eval_index"}. `kinds` are [T, C, H, W], already divided so that s = 1 is the budget eps."""
    params = {**params, "models": specs, "test": test_data.identity, "targets": targets, "grid": grid,
              "n_eval": n_eval, "seed": seed}

    def compute(_workdir) -> dict:
        n_test = len(test_data)
        index = (torch.arange(n_test) if n_eval is None
                 else torch.randperm(n_test, generator=generator(seed))[:n_eval].sort().values)
        x = test_data.x[index]
        s = torch.tensor(grid).view(1, -1, 1, 1, 1)
        to = torch.tensor(targets).repeat_interleave(len(grid))  # target of each scaled delta, t major
        asr, chance = {k: {} for k in kinds}, {}
        for role, model in models.items():
            ks = MEASURED[role]
            every = torch.cat([(kinds[k][:, None] * s).flatten(0, 1) for k in ks])
            hits = attacks.asr_many(model, x, every, to.repeat(len(ks)),
                                     batch_size=4096 if next(model.parameters()).is_cuda else 1000, progress=progress)
            for k, a in zip(ks, hits.view(len(ks), len(targets), len(grid))):
                asr[k][role] = a
            pred = attacks.predict(model, x)
            chance[role] = torch.tensor([(pred == t).float().mean().item() for t in targets])
        return {"asr": asr, "chance": chance, "eval_index": index}

    return {**store.fetch("scaling", params, compute), "hardware": store.meta("scaling", params)["hardware"]}


def run(profile: str = "smoke", *, norm=None, eps=None, targets=None, scales=None, factor=None, n_eval=None,
        n_patches=None, patch_size=None, patch_eval=None, patch_seed=None, solver=None, robust_solver=None,
        device=None, progress: bool = True, **overrides) -> dict:
    """Scale the natural and the robust model's universal perturbations and measure them.

    norm / eps: the threat model (None: the profile's l2 eps; linf defaults to 8/255).
    targets: target classes (names or indices; None: all). scales: positive multiples of eps
    at which to measure (1 and factor are always added). factor: the robust model's
    perturbation is made at factor * eps. n_eval: test images per measurement (None: the
    profile's; the paper profile uses all). n_patches, patch_size, patch_eval (test images per
    patch score), patch_seed: the Locality section's patch scoring (None: its defaults, so its
    cache is shared). solver / robust_solver: overrides of universals.SOLVER[profile] for the
    natural / robust model's perturbations. overrides: profile settings (data, width, ...).
    """
    if profile not in DEFAULTS:
        raise ValueError(f"profile must be one of {sorted(DEFAULTS)}, got {profile!r}")
    cfg = profiles.settings(profile, **overrides)
    norm, eps = locality.threat(cfg, norm, eps)
    defaults = DEFAULTS[profile]
    scales = defaults["scales"] if scales is None else scales
    if (not isinstance(scales, (list, tuple)) or not scales
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in scales)):
        raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales!r}")
    factor = defaults["factor"] if factor is None else factor
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
        raise ValueError(f"factor must be a number >= 1 (the robust model's budget is factor * eps), got {factor!r}")
    solvers = {}
    for name, given in (("solver", solver), ("robust_solver", robust_solver)):
        given = {**(defaults["robust_solver"] if name == "robust_solver" else {}), **(given or {})}
        unknown = set(given) - set(universals.SOLVER[profile])
        if unknown:
            raise ValueError(f"{name} may only set {sorted(universals.SOLVER[profile])}, got {sorted(unknown)}")
        solvers[name] = given
    train_data, test_data = zoo.load_data(cfg["data"])
    classes = train_data.classes
    targets = locality.class_indices(targets, classes)
    n_eval = defaults["n_eval"] if n_eval is None else n_eval
    if n_eval is not None and (isinstance(n_eval, bool) or not isinstance(n_eval, int)
                               or not 1 <= n_eval <= len(test_data)):
        raise ValueError(f"n_eval must be an integer in [1, {len(test_data)}], got {n_eval!r}")
    opts = locality.patch_options(profile, train_data.x.shape[-1], len(test_data), n_patches, patch_size, patch_eval,
                                  patch_seed)
    grid = sorted({float(s) for s in scales} | {1.0, float(factor)})

    device = device or default_device()
    specs = {role: zoo.recipe(cfg, role, train_data.identity) for role in MEASURED}
    models, metas = {}, {}
    for role, spec in specs.items():
        models[role], metas[role] = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
    seed = cfg["seed"]
    uni = universals.per_target(models["natural"], specs["natural"], train_data, test_data, profile=profile, norm=norm,
                                eps=eps, targets=targets, seed=seed, progress=progress, **solvers["solver"])
    rob = universals.per_target(models["robust"], specs["robust"], train_data, test_data, profile=profile, norm=norm,
                                eps=factor * eps, targets=targets, seed=seed, progress=progress,
                                **solvers["robust_solver"])
    scores = locality.score_patches(models["natural"], specs["natural"], uni, test_data, norm=norm, progress=progress,
                                    **opts)
    patches = best_and_worst(uni["deltas"], scores, norm)
    kinds = {"universal": uni["deltas"], "best": patches["best"], "worst": patches["worst"],
             "robust": rob["deltas"] / factor}
    solved = {k: {**universals.SOLVER[profile], **v} for k, v in solvers.items()}
    result = measure(models, specs, kinds, targets, test_data, grid=grid, n_eval=n_eval, seed=seed, progress=progress,
                     params={"norm": norm, "eps": eps, "factor": factor, "universal_seed": seed, **solved,
                             "patches": opts})
    hardware = {m["provenance"]["hardware"] for m in metas.values()} | {scores["hardware"], result["hardware"]}
    hardware |= {uni["hardware"], rob["hardware"]}
    return {
        "cfg": cfg, "train": train_data, "test": test_data, "classes": classes, "targets": targets, "norm": norm,
        "eps": eps, "factor": float(factor), "grid": torch.tensor(grid), "n_eval": len(result["eval_index"]),
        "patch_options": opts, "deltas": uni["deltas"], "robust_deltas": rob["deltas"], "patches": patches,
        "asr": result["asr"], "chance": result["chance"],
        "clean_acc": {role: m["clean_acc"] for role, m in metas.items()},
        "robust_acc": {role: m["robust_acc"] for role, m in metas.items()}, "hardware": hardware,
    }
