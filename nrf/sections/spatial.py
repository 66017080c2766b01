"""Section "Spatial invariance" (I-F4, I-F16): do perturbations still work when translated?

Standard perturbations are made for one test image each and measured on that image only;
universal perturbations (several per target, from different base sets) are measured on a
set of test images. Every perturbation is rolled by (i, j) pixels with wraparound over a grid
of shifts and its attack success rate (ASR) is measured at each shift. The paper's claim: the
universal ones keep working far from where they were made, the standard ones stop after
small shifts.
"""

import torch
from tqdm.auto import tqdm

from .. import attacks, profiles, store, universals, zoo
from ..runtime import default_device, generator
from . import locality

# Per-profile defaults (None in run() means these). The paper: 256 standard perturbations,
# ten universal ones per target on the whole test set, shifts every 4 px on 224 px images
# (1.8% of the side: 1 px on 32 px). Smoke keeps the CPU time to about two minutes: one
# universal perturbation per target (the one the other sections share), 50 test images, 4 px.
DEFAULTS = {
    "smoke": {"n_standard": 128, "per_target": 1, "n_eval": 50, "stride": 4},
    "paper": {"n_standard": 256, "per_target": 10, "n_eval": 1000, "stride": 1},
}
PGD_STEPS = 10  # the paper's standard perturbation: 10 steps of eps / 3, no restarts


def shift_grid(size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every shift (i, j) on a stride grid of a size x size image, [S, 2] (i major), and its
    wraparound distance: max(|i|, |j|) with i, j read as the shorter way round, [S]."""
    r = torch.arange(0, size, stride)
    grid = torch.cartesian_prod(r, r)
    return grid, torch.minimum(grid, size - grid).amax(1)


def centred(asr: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [S] map over shift_grid as an [n, n] image with the zero shift in the middle, and its
    axis: signed shifts in pixels (a roll by -i is the same as a roll by size - i)."""
    n = size // stride
    return torch.roll(asr.view(n, n), (n // 2, n // 2), (0, 1)), (torch.arange(n) - n // 2) * stride


def ring_curve(asr: torch.Tensor, ring: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ASR over the shifts at each wraparound distance: (distances [D], curves [..., D])."""
    distances = torch.unique(ring)
    return distances, torch.stack([asr[..., ring == d].mean(-1) for d in distances], -1)


def retention(curve: torch.Tensor, chance) -> torch.Tensor:
    """Share of the above-chance ASR at zero shift that is left at each distance."""
    return (curve - chance) / (curve[..., :1] - chance).clamp_min(1e-6)


def standard_shifts(model, spec: dict, test_data, *, norm: str, eps: float, n_standard: int, stride: int,
                    seed: int, progress: bool) -> dict:
    """Targeted PGD for n_standard seeded test images toward seeded random targets other than
    their label, each delta measured on its own image at every shift: {"index", "targets",
    "deltas", "asr" [S], "chance" (share of the clean images already predicted as their target)}."""
    params = {"what": "standard", "model": spec, "test": test_data.identity, "norm": norm, "eps": eps,
              "n_standard": n_standard, "stride": stride, "seed": seed, "steps": PGD_STEPS, "step_size": eps / 3}

    def compute(_workdir) -> dict:
        g = generator(seed)
        index = torch.randperm(len(test_data), generator=g)[:n_standard]
        x, y = test_data.x[index], test_data.y[index]
        classes = len(test_data.classes)
        targets = (y + torch.randint(1, classes, (len(y),), generator=g)) % classes
        deltas, _ = attacks.perturb(model, x, targets, norm=norm, eps=eps, step_size=eps / 3, epochs=PGD_STEPS,
                                    seed=seed, progress=progress)
        shifts, _ = shift_grid(x.shape[-1], stride)
        rows = shifts.split(x.shape[-1] // stride)  # one row of the grid per call, for the progress bar
        asr = torch.cat([attacks.shifted_asr(model, x, deltas, targets, s, batch_size=_batch(model))
                         for s in tqdm(rows, disable=not progress, desc="standard shifts")])
        chance = (attacks.predict(model, x) == targets).float().mean().item()
        return {"index": index, "targets": targets, "deltas": deltas.cpu(), "asr": asr, "chance": chance}

    return {**store.fetch("spatial", params, compute), "hardware": store.meta("spatial", params)["hardware"]}


def universal_shifts(model, spec: dict, unis: list[dict], test_data, *, norm: str, eps: float, n_eval: int,
                     stride: int, seed: int, solver: dict, progress: bool) -> dict:
    """Every universal perturbation of `unis` (universals.per_target results, one per seed, made
    with the `solver` settings) measured on n_eval seeded test images at every shift: {"index", "asr" [P, T, S],
    "chance" [T] (share of those images predicted as the target unperturbed)}."""
    targets = list(unis[0]["targets"])
    params = {"what": "universal", "model": spec, "test": test_data.identity, "norm": norm, "eps": eps,
              "targets": targets, "seeds": [u["seed"] for u in unis], "solver": solver, "n_eval": n_eval,
              "stride": stride, "seed": seed}

    def compute(_workdir) -> dict:
        index = torch.randperm(len(test_data), generator=generator(seed))[:n_eval].sort().values
        x = test_data.x[index]
        shifts, _ = shift_grid(x.shape[-1], stride)
        jobs = [(d, t) for u in unis for d, t in zip(u["deltas"], targets)]
        asr = torch.stack([attacks.shifted_asr(model, x, d, t, shifts, batch_size=_batch(model))
                           for d, t in tqdm(jobs, disable=not progress, desc="universal shifts")])
        pred = attacks.predict(model, x)
        chance = torch.tensor([(pred == t).float().mean().item() for t in targets])
        return {"index": index, "asr": asr.view(len(unis), len(targets), -1), "chance": chance}

    return {**store.fetch("spatial", params, compute), "hardware": store.meta("spatial", params)["hardware"]}


def _batch(model) -> int:
    return 4096 if next(model.parameters()).is_cuda else 500


def _positive_int(name: str, value, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        allowed = "a positive integer" + (f" at most {most}" if most is not None else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def run(profile: str = "smoke", *, norm=None, eps=None, targets=None, per_target=None, n_standard=None, n_eval=None,
        stride=None, solver=None, device=None, progress: bool = True, **overrides) -> dict:
    """Shift standard and universal perturbations of the natural ResNet-18 and measure their ASR.

    norm / eps: the threat model (None: the profile's l2 eps; linf defaults to 8/255).
    targets: the target classes of the universal perturbations (names or indices; None: all).
    per_target: universal perturbations per target, from seeds seed, seed + 1, ... (each its
    own base set). n_standard: standard perturbations (one test image each). n_eval: test
    images each universal perturbation is measured on. stride: pixels between grid shifts
    (must divide the image side). None: DEFAULTS[profile]. solver: overrides of
    universals.SOLVER[profile]. overrides: profile settings of the models (data, width, ...).
    """
    if profile not in DEFAULTS:
        raise ValueError(f"profile must be one of {sorted(DEFAULTS)}, got {profile!r}")
    cfg = profiles.settings(profile, **overrides)
    norm, eps = locality.threat(cfg, norm, eps)
    solver = dict(solver or {})
    unknown = set(solver) - set(universals.SOLVER[profile])
    if unknown:
        raise ValueError(f"solver may only set {sorted(universals.SOLVER[profile])}, got {sorted(unknown)}")
    train_data, test_data = zoo.load_data(cfg["data"])
    classes, size = train_data.classes, test_data.x.shape[-1]
    targets = locality.class_indices(targets, classes)
    given = {"per_target": per_target, "n_standard": n_standard, "n_eval": n_eval, "stride": stride}
    opts = {**DEFAULTS[profile], **{k: v for k, v in given.items() if v is not None}}
    _positive_int("per_target", opts["per_target"])
    _positive_int("n_standard", opts["n_standard"], len(test_data))
    _positive_int("n_eval", opts["n_eval"], len(test_data))
    _positive_int("stride", opts["stride"], size // 2)
    if size % opts["stride"]:
        raise ValueError(f"stride must divide the image side {size} (so the grid wraps evenly), got {opts['stride']!r}")

    device = device or default_device()
    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
    seeds = [cfg["seed"] + p for p in range(opts["per_target"])]
    unis = [{**universals.per_target(model, spec, train_data, test_data, profile=profile, norm=norm, eps=eps,
                                     targets=targets, seed=s, progress=progress, **solver), "seed": s} for s in seeds]
    std = standard_shifts(model, spec, test_data, norm=norm, eps=eps, n_standard=opts["n_standard"],
                          stride=opts["stride"], seed=cfg["seed"], progress=progress)
    uni = universal_shifts(model, spec, unis, test_data, norm=norm, eps=eps, n_eval=opts["n_eval"],
                           stride=opts["stride"], seed=cfg["seed"], solver={**universals.SOLVER[profile], **solver},
                           progress=progress)

    shifts, ring = shift_grid(size, opts["stride"])
    distances, std_curve = ring_curve(std["asr"], ring)
    _, uni_curves = ring_curve(uni["asr"].flatten(0, 1), ring)  # [P * T, D]: one per perturbation
    uni_chance = uni["chance"].repeat(len(seeds))  # each perturbation's own chance level
    std_map, axis = centred(std["asr"], size, opts["stride"])
    uni_map, _ = centred(uni["asr"].mean((0, 1)), size, opts["stride"])
    keep_std = retention(std_curve, std["chance"])
    keep_uni = retention(uni_curves, uni_chance[:, None])
    hardware = {meta["provenance"]["hardware"], std["hardware"], uni["hardware"]}
    hardware |= {u["hardware"] for u in unis}
    return {
        "cfg": cfg, "train": train_data, "test": test_data, "classes": classes, "targets": targets, "norm": norm,
        "eps": eps, "options": opts, "seeds": seeds, "shifts": shifts, "ring": ring, "axis": axis,
        "distances": distances, "clean_acc": meta["clean_acc"],
        "standard": {**std, "map": std_map, "curve": std_curve, "retention": keep_std,
                     "stderr": (std_curve * (1 - std_curve) / opts["n_standard"]).sqrt()},
        "universal": {**uni, "deltas": torch.stack([u["deltas"] for u in unis]), "map": uni_map,
                      "curves": uni_curves, "curve": uni_curves.mean(0), "spread": uni_curves.std(0, unbiased=False),
                      "retention": keep_uni, "chance_mean": uni["chance"].mean().item()},
        "hardware": hardware,
    }
