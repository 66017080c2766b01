"""Section "Appendix: computing universal perturbations" (I-F9, I-A6, I-F17, I-F18).

How the solver behaves and what else it can be fed, on the natural ResNet-18:

- I-F9 learning dynamics: base-set ASR per epoch (read off the solver's own forward passes)
  while the step size, the mini-batch size and the base-set size K vary one at a time around
  a centre setting whose step is the one `universals.SOLVER` uses, plus the held-out test ASR
  of each final perturbation (small K overfits its base set). This is what backs that step.
- I-A6 alternate base sets: the base set is K augmentations of one training image; its
  universal perturbation is compared with one from K ordinary training images and with a
  standard PGD perturbation of that image, on the test images of this model and of a second
  natural model (another seed).
- I-F17 diversity: several universal perturbations for one target from random starts, then
  the same runs with a penalty that pushes the feature changes they induce apart
  (nrf.diversity), with their pairwise similarity in pixel and in representation space.
- I-F18 subclass targets need fine labels (ImageNet-M10's 60 classes): the section only
  reports whether the data has them; nothing is computed for I-F18.
"""

import torch
from tqdm.auto import tqdm

from .. import attacks, data, diversity, profiles, store, universals, zoo
from ..runtime import default_device, generator
from . import locality

# Per-profile defaults (None in run() means these). The sweep is one factor at a time around
# the centre (step, batch, base_size); the centre step is universals.SOLVER's. The paper
# profile sweeps around SOLVER's own base set and batch (10000 images, 256) with all ten
# targets, twice SOLVER's epochs (to show they suffice), on the whole test set. Smoke keeps the
# whole section under a minute of one CPU core: small base sets, few epochs, 200 test images.
DEFAULTS = {
    "smoke": {"targets": ["dog", "horse", "truck"], "target": "dog", "steps": [0.05, 0.1, 0.2, 0.5, 1.0],
              "batches": [16, 64], "base_sizes": [16, 128], "batch": 32, "base_size": 64, "solver_epochs": 5,
              "n_eval": 200, "augment": "resized_crop_flip", "n_diverse": 4, "penalty": 3.0,
              "layers": ["layer1", "layer2", "layer3", "layer4"]},
    "paper": {"targets": None, "target": "dog", "steps": [0.05, 0.1, 0.2, 0.5, 1.0], "batches": [64, 128],
              "base_sizes": [100, 1000], "batch": 256, "base_size": 10000, "solver_epochs": 20, "n_eval": None,
              "augment": "resized_crop_flip", "n_diverse": 4, "penalty": 3.0,
              "layers": ["layer1", "layer2", "layer3", "layer4"]},
}
AUGMENTS = ("crop_flip", "resized_crop_flip")  # nrf.data's CIFAR (pad 4) and ImageNet (scale 0.08-1) augmentations
PGD_STEPS = 10  # the paper's standard perturbation: 10 steps of eps / 3, no restarts


def sweep(step: float, batch_size: int, base_size: int, steps, batch_sizes, base_sizes) -> list[tuple]:
    """The (step, batch_size, base_size) settings of a one-factor-at-a-time sweep around the
    centre, each once, sorted: the centre and every value of each factor with the others at
    the centre."""
    return sorted({(float(s), batch_size, base_size) for s in [step, *steps]}
                  | {(float(step), b, base_size) for b in batch_sizes}
                  | {(float(step), batch_size, k) for k in base_sizes})


def best_step(final: torch.Tensor, steps: list[float], centre: float) -> dict:
    """Which step reaches the highest mean of `final` ([S, G]: a final ASR per step and group),
    and whether `centre` is within noise of it: the mean paired difference best - centre over
    the groups is at most two standard errors. Among steps tied at the top the centre wins;
    "tied" lists the others."""
    mean = final.mean(1)
    top = [i for i in range(len(steps)) if mean[i] >= mean.max() - 1e-9]
    c = steps.index(centre)
    best = c if c in top else top[0]
    diff = final[best] - final[c]
    se = diff.std(unbiased=True).item() / len(diff) ** 0.5 if len(diff) > 1 else float("inf")
    return {"best": steps[best], "tied": [steps[i] for i in top if i != best], "best_mean": mean[best].item(),
            "centre_mean": mean[c].item(), "diff": diff.mean().item(), "se": se,
            "within_noise": best == c or diff.mean().item() <= 2 * se}


def _eval_index(n_test: int, n_eval: int | None, seed: int) -> torch.Tensor:
    """The held-out test images every ASR of this section is measured on (None: all)."""
    if n_eval is None:
        return torch.arange(n_test)
    return torch.randperm(n_test, generator=generator(seed))[:n_eval].sort().values


def _base_order(n_train: int, seed: int) -> torch.Tensor:
    """A seeded permutation of the training set: the base set of size K is its first K
    images, so smaller base sets are subsets of larger ones."""
    return torch.randperm(n_train, generator=generator(seed))


def _asr(model, x, deltas, targets) -> torch.Tensor:
    """attacks.asr_many in batches that suit the device: on a CPU, batches of 1000 images cost
    twice the time of 250 (the allocations of the larger ones dominate)."""
    return attacks.asr_many(model, x, deltas, targets, batch_size=4096 if next(model.parameters()).is_cuda else 250)


def _chance(model, x, targets) -> torch.Tensor:
    """Share of x predicted as each target unperturbed: the chance level of its ASR."""
    pred = attacks.predict(model, x)
    return torch.tensor([(pred == t).float().mean().item() for t in targets])


def dynamics(model, spec: dict, train_data, test_data, *, norm: str, eps: float, targets: list[int],
             settings: list[tuple], epochs: int, n_eval, max_batch: int, seed: int, progress: bool) -> dict:
    """I-F9: one attacks.perturb call per setting (step fraction, batch size, K), every target a
    group on the same base set: {"settings", "curves" [S, epochs, T] (base-set ASR per epoch),
    "asr" [S, T] (test ASR of the final perturbations), "base_asr" [S, T] (their ASR on their own
    base set), "chance" [T], "eval_index"}."""
    params = {"what": "dynamics", "model": spec, "test": test_data.identity, "norm": norm, "eps": eps,
              "targets": targets, "settings": settings, "epochs": epochs, "n_eval": n_eval, "max_batch": max_batch,
              "seed": seed}

    def compute(_workdir) -> dict:
        order = _base_order(len(train_data), seed)
        index = _eval_index(len(test_data), n_eval, seed)
        xe = test_data.x[index]
        curves, asr, base_asr = [], [], []
        for step, batch, k in tqdm(settings, disable=not progress, desc="I-F9 settings"):
            base = train_data.x[order[:k]]
            deltas, curve = attacks.perturb(model, base.repeat(len(targets), 1, 1, 1), torch.tensor(targets),
                                            group_size=k, norm=norm, eps=eps, step_size=step * eps, epochs=epochs,
                                            batch_size=batch, max_batch=max_batch, seed=seed)
            curves.append(curve.cpu())
            asr.append(_asr(model, xe, deltas, targets))
            base_asr.append(_asr(model, base, deltas, targets))
        return {"settings": settings, "curves": torch.stack(curves), "asr": torch.stack(asr),
                "base_asr": torch.stack(base_asr),
                "chance": _chance(model, xe, targets), "eval_index": index}

    return {**store.fetch("appendix", params, compute), "hardware": store.meta("appendix", params)["hardware"]}


def augmented(models: dict, specs: dict, train_data, test_data, *, norm: str, eps: float, target: int, image: int,
              augment: str, base_size: int, batch_size: int, step: float, epochs: int, n_eval, seed: int,
              progress: bool) -> dict:
    """I-A6: universal perturbations toward `target` from K seeded augmentations of training
    image `image` ("augmented") and from K ordinary training images ("ordinary"), solved in one
    perturb call, and a standard PGD perturbation of the image ("standard"); each measured on
    the test images of every model and on the image itself: {"deltas" {kind: [C, H, W]},
    "asr" {role: {kind: float}}, "chance" {role: float}, "own" {kind: bool}, "base_asr"
    {kind: final-epoch base-set ASR}, "augmentations" (the first 8), "eval_index"}."""
    params = {"what": "augmented", "models": specs, "test": test_data.identity, "norm": norm, "eps": eps,
              "target": target, "image": image, "augment": augment, "base_size": base_size,
              "batch_size": batch_size, "step": step, "epochs": epochs, "pgd_steps": PGD_STEPS, "n_eval": n_eval,
              "seed": seed}
    model = models["natural"]

    def compute(_workdir) -> dict:
        dev = next(model.parameters()).device
        one = train_data.x[image:image + 1].to(dev).expand(base_size, -1, -1, -1)
        gen = generator(seed, dev)
        if augment == "crop_flip":
            augs = data.to_float(data.crop_flip(one, generator=gen))
        else:
            augs = data.resized_crop_flip(one, size=one.shape[-1], generator=gen)
        ordinary = data.to_float(train_data.x[_base_order(len(train_data), seed)[:base_size]]).to(dev)
        deltas, curve = attacks.perturb(model, torch.cat([augs, ordinary]), torch.tensor([target, target]),
                                        group_size=base_size, norm=norm, eps=eps, step_size=step * eps,
                                        epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)
        standard = attacks.pgd(model, train_data.x[image:image + 1], torch.tensor([target]), norm=norm, eps=eps,
                               steps=PGD_STEPS, seed=seed)
        kinds = {"augmented": deltas[0].cpu(), "ordinary": deltas[1].cpu(), "standard": standard[0].cpu()}
        every = torch.stack(list(kinds.values()))
        index = _eval_index(len(test_data), n_eval, seed)
        xe = test_data.x[index]
        asr = {role: dict(zip(kinds, _asr(m, xe, every, [target] * len(kinds)).tolist()))
               for role, m in models.items()}
        own = _asr(model, train_data.x[image:image + 1], every, [target] * len(kinds))
        return {"deltas": kinds, "asr": asr, "chance": {role: _chance(m, xe, [target])[0].item()
                                                        for role, m in models.items()},
                "own": dict(zip(kinds, (own > 0.5).tolist())),
                "base_asr": {"augmented": curve[-1, 0].item(), "ordinary": curve[-1, 1].item()},
                "augmentations": augs[:8].cpu(), "eval_index": index}

    return {**store.fetch("appendix", params, compute), "hardware": store.meta("appendix", params)["hardware"]}


def diverse(model, spec: dict, train_data, test_data, *, norm: str, eps: float, target: int, n: int, penalty: float,
            layers: list[str], base_size: int, batch_size: int, step: float, epochs: int, n_eval, seed: int,
            progress: bool) -> dict:
    """I-F17: n universal perturbations toward `target` on one base set from random starts,
    without (weight 0) and with the representation penalty (weight `penalty`), same draws:
    {run: {"deltas" [n, C, H, W], "curve" [epochs, n], "penalty" [epochs], "asr" [n],
    "pixel" [n, n], "representation" [L, n, n]}} for run in ("plain", "penalised"), plus
    "chance" and "eval_index"."""
    params = {"what": "diverse", "model": spec, "test": test_data.identity, "norm": norm, "eps": eps,
              "target": target, "n": n, "penalty": penalty, "layers": layers, "base_size": base_size,
              "batch_size": batch_size, "step": step, "epochs": epochs, "n_eval": n_eval, "seed": seed}

    def compute(_workdir) -> dict:
        base = train_data.x[_base_order(len(train_data), seed)[:base_size]]
        index = _eval_index(len(test_data), n_eval, seed)
        xe = test_data.x[index]
        out = {"chance": _chance(model, xe, [target])[0].item(), "eval_index": index}
        for run, weight in (("plain", 0.0), ("penalised", penalty)):
            deltas, curve, pen = diversity.solve(model, base, target, n=n, norm=norm, eps=eps, step_size=step * eps,
                                                 epochs=epochs, batch_size=batch_size, weight=weight, layers=layers,
                                                 seed=seed, progress=progress)
            out[run] = {"deltas": deltas.cpu(), "curve": curve.cpu(), "penalty": pen.cpu(),
                        "asr": _asr(model, xe, deltas, [target] * n),
                        **diversity.similarity(model, xe, deltas, layers)}
        return out

    return {**store.fetch("appendix", params, compute), "hardware": store.meta("appendix", params)["hardware"]}


def _positive_ints(name: str, values, most: int) -> list[int]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list of positive integers at most {most}, got {values!r}")
    return [profiles.positive_int(name, v, most) for v in values]


def _step_fractions(name: str, values) -> list[float]:
    if (not isinstance(values, (list, tuple)) or not values
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)):
        raise ValueError(f"{name} must be a non-empty list of positive fractions of eps, got {values!r}")
    return [float(v) for v in values]


def run(profile: str = "smoke", *, norm=None, eps=None, targets=None, target=None, steps=None, step=None,
        batches=None, batch=None, base_sizes=None, base_size=None, solver_epochs=None, n_eval=None, image=None,
        augment=None, n_diverse=None, penalty=None, layers=None, device=None, progress: bool = True,
        **overrides) -> dict:
    """Learning dynamics (I-F9), augmented base sets (I-A6) and diversity (I-F17) of universal
    perturbations of the natural ResNet-18; I-F18 is only checked for (fine labels).

    norm / eps: the threat model (None: the profile's l2 eps; linf defaults to 8/255).
    targets: I-F9's target classes (names or indices). target: the one target of I-A6 and
    I-F17. steps: I-F9's step sizes as fractions of eps. step: the centre step (None:
    universals.SOLVER's). batches / base_sizes: I-F9's mini-batch sizes and base-set sizes
    K; batch / base_size: the centre, also used by I-A6 (K augmentations) and I-F17.
    solver_epochs: the solver's epochs everywhere (`epochs` is the models' training).
    n_eval: held-out test images of every ASR (None: all). image: the training image of I-A6
    (None: a seeded one of another class, outside the base set). augment: one of AUGMENTS.
    n_diverse: perturbations of I-F17; penalty: the weight of its orthogonality penalty (> 0);
    layers: its layers (names of nrf.diversity.LAYERS).
    None: DEFAULTS[profile]. overrides: profile settings of the models (data, width, ...).
    """
    if profile not in DEFAULTS:
        raise ValueError(f"profile must be one of {sorted(DEFAULTS)}, got {profile!r}")
    cfg = profiles.settings(profile, **overrides)
    norm, eps = locality.threat(cfg, norm, eps)
    given = {"targets": targets, "target": target, "steps": steps, "batches": batches,
             "batch": batch, "base_sizes": base_sizes, "base_size": base_size, "solver_epochs": solver_epochs,
             "augment": augment, "n_diverse": n_diverse, "penalty": penalty, "layers": layers}
    opts = {**DEFAULTS[profile], **{k: v for k, v in given.items() if v is not None}}
    opts["step"] = universals.SOLVER[profile]["step"] if step is None else step
    opts["n_eval"] = DEFAULTS[profile]["n_eval"] if n_eval is None else n_eval
    train_data, test_data = zoo.load_data(cfg["data"])
    classes, n_train = train_data.classes, len(train_data)
    targets = locality.class_indices(opts["targets"], classes)
    target = locality.class_index(opts["target"], classes, "target")
    steps = _step_fractions("steps", opts["steps"])
    (step,) = _step_fractions("step", [opts["step"]])
    batches = _positive_ints("batches", opts["batches"], n_train)
    base_sizes = _positive_ints("base_sizes", opts["base_sizes"], n_train)
    batch = profiles.positive_int("batch", opts["batch"], n_train)
    base_size = profiles.positive_int("base_size", opts["base_size"], n_train - 1)
    if base_size < 2 or min(base_sizes) < 2:
        raise ValueError(f"base_size and base_sizes must be at least 2 (K = 1 is a standard perturbation), "
                         f"got {base_size!r} and {base_sizes!r}")
    epochs = profiles.positive_int("solver_epochs", opts["solver_epochs"])
    if opts["n_eval"] is not None:
        profiles.positive_int("n_eval", opts["n_eval"], len(test_data))
    if opts["augment"] not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {opts['augment']!r}")
    n_diverse = opts["n_diverse"]
    if isinstance(n_diverse, bool) or not isinstance(n_diverse, int) or n_diverse < 2:
        raise ValueError(f"n_diverse must be an integer >= 2 (pairs to compare), got {n_diverse!r}")
    if isinstance(opts["penalty"], bool) or not isinstance(opts["penalty"], (int, float)) or not opts["penalty"] > 0:
        raise ValueError(f"penalty must be a positive number (the weight of the orthogonality penalty), "
                         f"got {opts['penalty']!r}")
    layers = diversity.check_layers(opts["layers"])
    order = _base_order(n_train, cfg["seed"])
    if image is None:
        rest = order[base_size:]
        image = int(rest[train_data.y[rest] != target][0])
    elif isinstance(image, bool) or not isinstance(image, int) or not 0 <= image < n_train:
        raise ValueError(f"image must be a training-image index in [0, {n_train}), got {image!r}")

    device = device or default_device()
    specs = {role: zoo.recipe(cfg, role, train_data.identity) for role in ("natural", "natural_seed1")}
    models, metas = {}, {}
    for role, spec in specs.items():
        models[role], metas[role] = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
    seed, common = cfg["seed"], {"norm": norm, "eps": eps, "n_eval": opts["n_eval"], "progress": progress}
    settings = sweep(step, batch, base_size, steps, batches, base_sizes)
    dyn = dynamics(models["natural"], specs["natural"], train_data, test_data, targets=targets, settings=settings,
                   epochs=epochs, max_batch=universals.SOLVER[profile]["max_batch"], seed=seed, **common)
    solver = {"base_size": base_size, "batch_size": batch, "step": step, "epochs": epochs, "seed": seed}
    aug = augmented(models, specs, train_data, test_data, target=target, image=image, augment=opts["augment"],
                    **solver, **common)
    div = diverse(models["natural"], specs["natural"], train_data, test_data, target=target, n=n_diverse,
                  penalty=float(opts["penalty"]), layers=layers, **solver, **common)
    hardware = {m["provenance"]["hardware"] for m in metas.values()} | {dyn["hardware"], aug["hardware"],
                                                                        div["hardware"]}
    return {
        "cfg": cfg, "train": train_data, "test": test_data, "classes": classes, "norm": norm, "eps": eps,
        "targets": targets, "target": target, "image": image,
        "options": {**opts, "targets": targets, "target": target, "image": image},
        "centre": (step, batch, base_size), "steps": steps, "batches": batches,
        "base_sizes": base_sizes, "dynamics": dyn, "augmented": aug, "diverse": div,
        "fine_classes": None if train_data.fine_y is None else len(train_data.fine_classes),
        "clean_acc": {role: m["clean_acc"] for role, m in metas.items()}, "hardware": hardware,
    }
