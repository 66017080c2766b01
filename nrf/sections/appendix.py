"""Section "Appendix: computing universal perturbations" (I-F9, I-A6, I-F17, I-F18).

How the solver behaves and what else it can be fed, on the natural ResNet-18:

- I-F9 learning dynamics: base-set ASR per epoch (read off the solver's own forward passes)
  while the step size, the mini-batch size and the base-set size K vary one at a time around
  a centre setting whose step is the one every other page uses (`options.UNIVERSAL`), plus the
  held-out test ASR of each final perturbation (small K overfits its base set). This is what
  backs that step.
- I-A6 alternate base sets: the base set is K augmentations of one training image; its
  universal perturbation is compared with one from K ordinary training images and with a
  standard PGD perturbation of that image, on the test images of this model and of a second
  natural model (another seed).
- I-F17 diversity: several universal perturbations for one target from random starts, then
  the same runs with a penalty that pushes the feature changes they induce apart
  (nrf.diversity), with their pairwise similarity in pixel space, in magnitude spectra (blind to
  where a pattern lies) and in representation space. The paper's claim, that the penalised
  perturbations "remain similar, but with changes in spatial arrangements", is tested on the
  pairs: the spectrum cosine must not fall by a large amount, the pixel cosine must fall.
- I-F18 subclass targets need fine labels (ImageNet-M10's 60 classes): the section only
  records whether the data has them; nothing is computed for I-F18.
"""

from dataclasses import replace

import torch

from .. import attacks, claims, data, diversity, options, records, store, zoo
from ..data import to_float
from ..options import Option
from ..runtime import bar, default_device, device_batch, device_of, generator

AUGMENTS = ("crop_flip", "resized_crop_flip")  # nrf.data's CIFAR (pad 4) and ImageNet (scale 0.08-1) augmentations
ROLES = ("natural", "natural_seed1")
KINDS = ("augmented", "ordinary", "standard")  # I-A6's three perturbations
MIN_DROP = 0.1  # I-F17: the smallest fall of the mean representation cosine that counts as pushing apart
WEAK = 0.1  # a perturbation that beats chance by less than this says little about the paper's setting

# The centre of the I-F9 sweep is the universal-perturbation solver of every other page (same
# option names, options.UNIVERSAL), with the appendix's own sizes: the sweep is one factor at
# a time around it, and I-A6 and I-F17 use it too. The paper profile sweeps around the other
# pages' base set and batch (10000 images, 256) with all ten targets and twice their epochs (to
# show they suffice), on the whole test set. Smoke keeps the whole section to about a minute
# of one CPU core: small base sets, few epochs, 200 test images.
_SOLVER = {o.name: o for o in options.UNIVERSAL}
OPTIONS = (
    options.MODELS
    + options.THREAT
    + [
        replace(
            _SOLVER["solver_step"],
            help="the centre step, a fraction of eps (default: the one every other page uses, which I-F9 is to back)",
        ),
        replace(
            _SOLVER["solver_batch"],
            default={"smoke": 32, "medium": 128, "paper": 256},
            help="the centre mini-batch size (base-set images per perturbation and step), also of I-A6 and I-F17",
        ),
        replace(
            _SOLVER["base_size"],
            default={"smoke": 64, "medium": 2000, "paper": 10000},
            low=2,
            help="the centre base-set size K, also I-A6's number of augmentations and I-F17's base set",
        ),
        replace(
            _SOLVER["solver_epochs"],
            default={"smoke": 5, "medium": 10, "paper": 20},
            help="passes of the solver over the base set, everywhere on the page",
        ),
        Option(
            "targets",
            {"smoke": ["dog", "horse", "truck"], "medium": ["dog", "horse", "truck"], "paper": None},
            "I-F9's target classes, names or indices (null: all)",
            kind="classes",
            optional=True,
        ),
        Option("target", "dog", "the one target class of I-A6 and I-F17", kind="class"),
        Option("steps", [0.05, 0.1, 0.2, 0.5, 1.0], "I-F9's step sizes, fractions of eps", kind="floats", low=1e-12),
        Option(
            "batches",
            {"smoke": [16, 64], "medium": [64, 128], "paper": [64, 128]},
            "I-F9's mini-batch sizes",
            kind="ints",
            low=1,
        ),
        Option(
            "base_sizes",
            {"smoke": [16, 128], "medium": [100, 1000], "paper": [100, 1000]},
            "I-F9's base-set sizes K (K = 1 would be a standard perturbation)",
            kind="ints",
            low=2,
        ),
        Option(
            "n_eval",
            {"smoke": 200, "medium": 2000, "paper": None},
            "held-out test images of every ASR, a seeded subset (null: all)",
            kind="int",
            low=1,
            optional=True,
        ),
        Option(
            "image",
            None,
            "I-A6's training image, an index (null: a seeded one of another class than target, outside the base set)",
            kind="int",
            low=0,
            optional=True,
        ),
        Option(
            "augment",
            "resized_crop_flip",
            "I-A6's augmentation: CIFAR's crop_flip (pad 4) or ImageNet's resized_crop_flip (8% to 100% of the area)",
            kind="str",
            choices=AUGMENTS,
        ),
        Option(
            "n_diverse",
            {"smoke": 4, "medium": 8, "paper": 8},
            "I-F17's number of perturbations (n (n - 1) / 2 pairs: 28 from 8, enough for a standard error)",
            kind="int",
            low=2,
        ),
        Option("penalty", 3.0, "I-F17's weight of the orthogonality penalty", low=1e-12),
        Option(
            "layers",
            ["layer1", "layer2", "layer3", "layer4"],
            "I-F17's penalised layers",
            kind="strs",
            choices=tuple(diversity.LAYERS),
        ),
    ]
)


def sweep(step: float, batch_size: int, base_size: int, steps, batch_sizes, base_sizes) -> list[tuple]:
    """The (step, batch_size, base_size) settings of a one-factor-at-a-time sweep around the
    centre, each once, sorted: the centre and every value of each factor with the others at
    the centre."""
    return sorted(
        {(float(s), batch_size, base_size) for s in [step, *steps]}
        | {(float(step), b, base_size) for b in batch_sizes}
        | {(float(step), batch_size, k) for k in base_sizes}
    )


def panels(settings: list, centre: tuple) -> dict:
    """I-F9's three panels, one per factor (step, batch, base_size): {"values": its values,
    sorted, "rows": the index in `settings` of each value with the other two at the centre}."""
    settings = [tuple(s) for s in settings]
    out = {}
    for i, factor in enumerate(("step", "batch", "base_size")):
        values = sorted({s[i] for s in settings if all(s[j] == centre[j] for j in range(3) if j != i)})
        out[factor] = {
            "values": values,
            "rows": [settings.index(tuple(v if j == i else centre[j] for j in range(3))) for v in values],
        }
    return out


def best_step(final: list, steps: list[float], centre: float) -> dict:
    """Which step reaches the highest mean of `final` ([S][G]: a final ASR per step and group),
    and whether `centre` is within noise of it: the mean paired difference best - centre over
    the groups is at most claims.K_SE standard errors (one group: no error, so within noise).
    Among steps tied at the top the centre wins; "tied" lists the others."""
    mean = [sum(f) / len(f) for f in final]
    top = [i for i in range(len(steps)) if mean[i] >= max(mean) - 1e-9]
    c = steps.index(centre)
    best = c if c in top else top[0]
    diff, se = claims.mean_se([b - a for b, a in zip(final[best], final[c])])
    if len(final[c]) < 2:
        se = float("inf")
    return {
        "best": steps[best],
        "tied": [steps[i] for i in top if i != best],
        "best_mean": mean[best],
        "centre_mean": mean[c],
        "diff": diff,
        "se": se,
        "within_noise": best == c or not claims.exceeds(diff, se),
    }


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
    return attacks.asr_many(model, x, deltas, targets, batch_size=4096 if device_of(model).type == "cuda" else 250)


def _chance(model, x, targets) -> torch.Tensor:
    """Share of x predicted as each target unperturbed: the chance level of its ASR."""
    pred = attacks.predict(model, x)
    return torch.tensor([(pred == t).float().mean().item() for t in targets])


def dynamics(
    model,
    spec: dict,
    train_data,
    test_data,
    *,
    norm: str,
    eps: float,
    targets: list[int],
    settings: list[tuple],
    epochs: int,
    n_eval,
    seed: int,
) -> dict:
    """I-F9: one attacks.perturb call per setting (step fraction, batch size, K), every target a
    group on the same base set: {"settings", "curves" [S, epochs, T] (base-set ASR per epoch),
    "asr" [S, T] (test ASR of the final perturbations), "base_asr" [S, T] (their ASR on their own
    base set), "chance" [T], "eval_index"}."""
    params = {
        "what": "dynamics",
        "model": spec,
        "test": test_data.identity,
        "norm": norm,
        "eps": eps,
        "targets": targets,
        "settings": settings,
        "epochs": epochs,
        "n_eval": n_eval,
        "seed": seed,
    }

    def compute(_workdir) -> dict:
        order = _base_order(len(train_data), seed)
        index = _eval_index(len(test_data), n_eval, seed)
        xe = test_data.x[index]
        max_batch = max(device_batch(device_of(model)), *(b for _, b, _ in settings))
        curves, asr, base_asr = [], [], []
        for step, batch, k in bar(settings, desc="I-F9 settings"):
            base = train_data.x[order[:k]]
            deltas, curve = attacks.perturb(
                model,
                base.repeat(len(targets), 1, 1, 1),
                torch.tensor(targets),
                group_size=k,
                norm=norm,
                eps=eps,
                step_size=step * eps,
                epochs=epochs,
                batch_size=batch,
                max_batch=max_batch,
                seed=seed,
            )
            curves.append(curve.cpu())
            asr.append(_asr(model, xe, deltas, targets))
            base_asr.append(_asr(model, base, deltas, targets))
        return {
            "settings": settings,
            "curves": torch.stack(curves),
            "asr": torch.stack(asr),
            "base_asr": torch.stack(base_asr),
            "chance": _chance(model, xe, targets),
            "eval_index": index,
        }

    return store.fetch("appendix", params, compute)


def augmented(
    models: dict,
    specs: dict,
    train_data,
    test_data,
    *,
    norm: str,
    eps: float,
    target: int,
    image: int,
    augment: str,
    base_size: int,
    batch_size: int,
    step: float,
    epochs: int,
    n_eval,
    seed: int,
) -> dict:
    """I-A6: universal perturbations toward `target` from K seeded augmentations of training
    image `image` ("augmented") and from K ordinary training images ("ordinary"), solved in one
    perturb call, and the paper's standard perturbation of the image (attacks.pgd, "standard");
    each measured on the test images of every model and on the image itself: {"deltas" {kind:
    [C, H, W]}, "asr" {role: {kind: float}}, "chance" {role: float}, "own" {kind: bool},
    "base_asr" {kind: final-epoch base-set ASR}, "augmentations" (the first 8), "eval_index"}."""
    params = {
        "what": "augmented",
        "models": specs,
        "test": test_data.identity,
        "norm": norm,
        "eps": eps,
        "target": target,
        "image": image,
        "augment": augment,
        "base_size": base_size,
        "batch_size": batch_size,
        "step": step,
        "epochs": epochs,
        "n_eval": n_eval,
        "seed": seed,
    }
    model = models["natural"]

    def compute(_workdir) -> dict:
        dev = device_of(model)
        one = train_data.x[image : image + 1].to(dev).expand(base_size, -1, -1, -1)
        gen = generator(seed, dev)
        if augment == "crop_flip":
            augs = to_float(data.crop_flip(one, generator=gen))
        else:
            augs = data.resized_crop_flip(one, size=one.shape[-1], generator=gen)
        ordinary = to_float(train_data.x[_base_order(len(train_data), seed)[:base_size]]).to(dev)
        deltas, curve = attacks.perturb(
            model,
            torch.cat([augs, ordinary]),
            torch.tensor([target, target]),
            group_size=base_size,
            norm=norm,
            eps=eps,
            step_size=step * eps,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            desc="I-A6 base sets",
        )
        standard = attacks.pgd(
            model, train_data.x[image : image + 1], torch.tensor([target]), norm=norm, eps=eps, seed=seed
        )
        kinds = {"augmented": deltas[0].cpu(), "ordinary": deltas[1].cpu(), "standard": standard[0].cpu()}
        every = torch.stack(list(kinds.values()))
        index = _eval_index(len(test_data), n_eval, seed)
        xe = test_data.x[index]
        asr = {role: dict(zip(kinds, _asr(m, xe, every, [target] * len(kinds)).tolist())) for role, m in models.items()}
        own = _asr(model, train_data.x[image : image + 1], every, [target] * len(kinds))
        return {
            "deltas": kinds,
            "asr": asr,
            "chance": {role: _chance(m, xe, [target])[0].item() for role, m in models.items()},
            "own": dict(zip(kinds, (own > 0.5).tolist())),
            "base_asr": {"augmented": curve[-1, 0].item(), "ordinary": curve[-1, 1].item()},
            "augmentations": augs[:8].cpu(),
            "eval_index": index,
        }

    return store.fetch("appendix", params, compute)


def diverse(
    model,
    spec: dict,
    train_data,
    test_data,
    *,
    norm: str,
    eps: float,
    target: int,
    n: int,
    penalty: float,
    layers: list[str],
    base_size: int,
    batch_size: int,
    step: float,
    epochs: int,
    n_eval,
    seed: int,
) -> dict:
    """I-F17: n universal perturbations toward `target` on one base set from random starts,
    without (weight 0) and with the representation penalty (weight `penalty`), same draws:
    {run: {"deltas" [n, C, H, W], "curve" [epochs, n], "penalty" [epochs], "asr" [n],
    "pixel" [n, n], "representation" [L, n, n]}} for run in ("plain", "penalised"), plus
    "chance" and "eval_index"."""
    params = {
        "what": "diverse",
        "model": spec,
        "test": test_data.identity,
        "norm": norm,
        "eps": eps,
        "target": target,
        "n": n,
        "penalty": penalty,
        "layers": layers,
        "base_size": base_size,
        "batch_size": batch_size,
        "step": step,
        "epochs": epochs,
        "n_eval": n_eval,
        "seed": seed,
    }

    def compute(_workdir) -> dict:
        base = train_data.x[_base_order(len(train_data), seed)[:base_size]]
        index = _eval_index(len(test_data), n_eval, seed)
        xe = test_data.x[index]
        out = {"chance": _chance(model, xe, [target])[0].item(), "eval_index": index}
        for run, weight in (("plain", 0.0), ("penalised", penalty)):
            deltas, curve, pen = diversity.solve(
                model,
                base,
                target,
                n=n,
                norm=norm,
                eps=eps,
                step_size=step * eps,
                epochs=epochs,
                batch_size=batch_size,
                weight=weight,
                layers=layers,
                seed=seed,
                desc=f"I-F17 {run}",
            )
            out[run] = {
                "deltas": deltas.cpu(),
                "curve": curve.cpu(),
                "penalty": pen.cpu(),
                "asr": _asr(model, xe, deltas, [target] * n),
                **diversity.similarity(model, xe, deltas, layers),
            }
        return out

    return store.fetch("appendix", params, compute)


def _at_most(name: str, values: list[int], most: int, what: str) -> None:
    if max(values) > most:
        given = values if len(values) > 1 else values[0]
        raise ValueError(f"option {name} must be at most {most} ({what}), got {given}")


def run(cfg: dict) -> dict:
    """Learning dynamics (I-F9), augmented base sets (I-A6) and diversity (I-F17) of universal
    perturbations of the natural ResNet-18; I-F18 is only checked for (fine labels)."""
    norm, eps = options.threat(cfg)
    train_data, test_data = zoo.load_data(cfg["data"])
    classes, n_train, n_test = list(train_data.classes), len(train_data), len(test_data)
    targets = options.class_indices(cfg["targets"], classes, "targets")
    if not targets:
        raise ValueError("option targets must name at least one class, got []")
    target = options.class_index(cfg["target"], classes, "target")
    step, batch, base_size, epochs = cfg["solver_step"], cfg["solver_batch"], cfg["base_size"], cfg["solver_epochs"]
    _at_most("base_size", [base_size], n_train - 1, "the training images less I-A6's image")
    _at_most("base_sizes", cfg["base_sizes"], n_train, "the training images")
    _at_most("solver_batch", [batch], n_train, "the training images")
    _at_most("batches", cfg["batches"], n_train, "the training images")
    if cfg["n_eval"] is not None:
        _at_most("n_eval", [cfg["n_eval"]], n_test, "the test images")
    if len(set(cfg["layers"])) != len(cfg["layers"]):
        raise ValueError(f"option layers must be distinct, got {cfg['layers']}")
    seed = cfg["seed"]
    image = cfg["image"]
    if image is None:
        rest = _base_order(n_train, seed)[base_size:]
        image = int(rest[train_data.y[rest] != target][0])
    else:
        _at_most("image", [image], n_train - 1, "an index into the training images")

    device = default_device()
    specs = {role: zoo.recipe(cfg, role, train_data.identity) for role in ROLES}
    models, metas = {}, {}
    for role, spec in specs.items():
        models[role], metas[role] = zoo.trained(spec, train_data, test_data, device=device)
    common = {"norm": norm, "eps": eps, "n_eval": cfg["n_eval"], "seed": seed}
    settings = sweep(step, batch, base_size, cfg["steps"], cfg["batches"], cfg["base_sizes"])
    dyn = dynamics(
        models["natural"],
        specs["natural"],
        train_data,
        test_data,
        targets=targets,
        settings=settings,
        epochs=epochs,
        **common,
    )
    solver = {"base_size": base_size, "batch_size": batch, "step": step, "epochs": epochs}
    aug = augmented(
        models, specs, train_data, test_data, target=target, image=image, augment=cfg["augment"], **solver, **common
    )
    div = diverse(
        models["natural"],
        specs["natural"],
        train_data,
        test_data,
        target=target,
        n=cfg["n_diverse"],
        penalty=cfg["penalty"],
        layers=cfg["layers"],
        **solver,
        **common,
    )

    centre = (step, batch, base_size)
    runs = ("plain", "penalised")
    results = {
        "classes": classes,
        "norm": norm,
        "eps": eps,
        "targets": targets,
        "target": target,
        "image": image,
        "image_label": int(train_data.y[image]),
        "n_eval": len(dyn["eval_index"]),
        "n_test": n_test,
        "centre": {"step": step, "batch": batch, "base_size": base_size},
        "solver_epochs": epochs,
        "augment": cfg["augment"],
        "penalty": cfg["penalty"],
        "layers": cfg["layers"],
        "clean_acc": {role: m["clean_acc"] for role, m in metas.items()},
        "dynamics": {
            "settings": [list(s) for s in dyn["settings"]],
            "panels": panels(dyn["settings"], centre),
            **{k: dyn[k] for k in ("curves", "asr", "base_asr", "chance")},
        },
        "augmented": {k: aug[k] for k in ("asr", "chance", "own", "base_asr")},
        "diverse": {
            "chance": div["chance"],
            **{run: {k: v for k, v in div[run].items() if k != "deltas"} for run in runs},
        },
        "fine_classes": None if train_data.fine_y is None else len(train_data.fine_classes),
        "data_identity": train_data.identity,
    }
    tensors = {
        "image": to_float(train_data.x[image]),
        "augmentations": aug["augmentations"],
        "augmented_deltas": torch.stack([aug["deltas"][k] for k in KINDS]),
        **{f"diverse_{run}": div[run]["deltas"] for run in runs},
    }
    return {"results": results, "tensors": tensors, "data": records.data_note(train_data, test_data)}


# ---- Verdicts -------------------------------------------------------------------------------------


def _mean(values) -> float:
    return sum(values) / len(values)


def _off_diagonal(m) -> list[float]:
    """The entries i < j of a square matrix (a list of lists)."""
    return [m[i][j] for i in range(len(m)) for j in range(i + 1, len(m))]


def _pairs(run: dict) -> list[float]:
    """Per pair i < j of I-F17's perturbations: the absolute cosine between the changes they
    induce, mean over layers (absolute, as the penalty counts opposite changes as alike)."""
    per_layer = [_off_diagonal(m) for m in run["representation"]]
    return [_mean([abs(c) for c in v]) for v in zip(*per_layer)]


F9_MARGIN = 0.05  # "no large impact": the centre step within 5 points of the best step
F9_SENTENCE = "did not have a large impact on the final training accuracy"


def _step_verdict(r: dict) -> claims.Verdict:
    d, centre = r["dynamics"], r["centre"]["step"]
    panel = d["panels"]["step"]
    final = {where: [d[key][i] for i in panel["rows"]] for where, key in (("base", "base_asr"), ("test", "asr"))}
    n_targets = len(r["targets"])
    bound = claims.below(
        0.0,
        0.0,
        100 * F9_MARGIN,
        what="on its own base set and on held-out test images, the best "
        "step's final ASR minus the centre step's (paired over targets)",
    )  # for its wording
    criterion = claims.quoted(F9_SENTENCE, bound.criterion)
    chance = _mean(d["chance"])
    best_test = max(_mean(f) for f in final["test"])
    signal_se = claims.diff_se(
        claims.binomial_se(best_test, r["n_eval"] * n_targets), claims.binomial_se(chance, r["n_eval"] * n_targets)
    )
    common = {
        "claim": f"the solver's step size has no large impact (centre {centre:g} eps against the best)",
        "test": "I-F9",
        "unit": "points",
        "criterion": criterion,
    }
    if n_targets < 2 or len(panel["values"]) < 2:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail="needs at least two targets (the spread) and two step sizes",
        )
    if not claims.exceeds(best_test - chance, signal_se):
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail=f"no step beats chance ({100 * chance:.1f}%) on test images: no signal to compare",
        )
    found = {where: best_step(f, panel["values"], centre) for where, f in final.items()}
    passed = sum(claims.below(100 * v["diff"], 100 * v["se"], 100 * F9_MARGIN).passed for v in found.values())
    words = []
    for where, v in found.items():
        tied = f", tied with {', '.join(f'{t:g}' for t in v['tied'])}" if v["tied"] else ""
        words.append(
            f"{where}: best {v['best']:g} eps ({100 * v['best_mean']:.1f}%{tied}), centre {100 * v['centre_mean']:.1f}%"
        )
    centre_test = found["test"]["centre_mean"]
    weak = (
        f"; the centre beats chance by only {100 * (centre_test - chance):.1f} points, so this only says the step "
        "is not unreasonable"
        if centre_test - chance < WEAK
        else ""
    )
    return claims.Verdict(
        **common,
        effect=100 * found["test"]["diff"],
        spread=100 * found["test"]["se"],
        status=claims.outcome(passed, 2),
        detail="; ".join(words) + weak,
    )


def _overfit_verdict(r: dict) -> claims.Verdict:
    d = r["dynamics"]
    panel = d["panels"]["base_size"]
    common = {
        "claim": "a small base set overfits it",
        "test": "I-F9",
        "unit": "points",
        "criterion": f"the base-set ASR minus the test ASR of the smallest K exceeds that of the largest K by "
        f"more than {claims.K_SE} s.e. (paired over targets)",
    }
    if len(r["targets"]) < 2 or len(panel["values"]) < 2:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail="needs at least two targets (the spread) and two base-set sizes",
        )
    small, large = panel["rows"][0], panel["rows"][-1]
    gap = {row: [b - t for b, t in zip(d["base_asr"][row], d["asr"][row])] for row in (small, large)}
    effect, se = claims.mean_se([a - b for a, b in zip(gap[small], gap[large])])
    k_small, k_large = panel["values"][0], panel["values"][-1]
    return claims.Verdict(
        **common,
        effect=100 * effect,
        spread=100 * se,
        status="holds" if claims.exceeds(effect, se) else "does not hold",
        detail=f"K = {k_small}: {100 * _mean(gap[small]):.1f} points above its test ASR; "
        f"K = {k_large}: {100 * _mean(gap[large]):.1f}",
    )


A6_SENTENCE = (
    "still have similar (but less salient) visual characteristics, and are transferable but to a lesser degree"
)


def _augmented_verdicts(r: dict) -> list[claims.Verdict]:
    a, n = r["augmented"], r["n_eval"]
    found = []
    for role, where, model in (
        ("natural", "new images", "the model it was made on"),
        ("natural_seed1", "a second model", "the second natural model"),
    ):
        asr, chance = a["asr"][role], a["chance"][role]
        common = {
            "claim": f"K augmentations of one image give a perturbation that works on {where}",
            "test": "I-A6",
            "unit": "points",
            "criterion": claims.quoted(
                A6_SENTENCE,
                f"on the held-out test images of {model}, its ASR exceeds "
                f"that of a standard perturbation of the image by more than {claims.K_SE} "
                "s.e.",
            ),
        }
        ordinary = a["asr"]["natural"]["ordinary"]
        no_signal_se = claims.diff_se(claims.binomial_se(ordinary, n), claims.binomial_se(a["chance"]["natural"], n))
        if not claims.exceeds(ordinary - a["chance"]["natural"], no_signal_se):
            found.append(
                claims.Verdict(
                    **common,
                    effect=None,
                    spread=None,
                    status="cannot be tested",
                    detail=f"even K ordinary training images give no perturbation above chance "
                    f"({100 * ordinary:.1f}% against {100 * a['chance']['natural']:.1f}%)",
                )
            )
            continue
        diff = asr["augmented"] - asr["standard"]
        se = claims.diff_se(claims.binomial_se(asr["augmented"], n), claims.binomial_se(asr["standard"], n))
        found.append(
            claims.Verdict(
                **common,
                effect=100 * diff,
                spread=100 * se,
                status="holds" if claims.exceeds(diff, se) else "does not hold",
                detail=f"augmented {100 * asr['augmented']:.1f}%, standard {100 * asr['standard']:.1f}%, K ordinary images "
                f"{100 * asr['ordinary']:.1f}%, chance {100 * chance:.1f}% (of {n} test images)",
            )
        )
    return found


def pair_difference(a, b) -> tuple[float, float]:
    """(mean, standard error) over the pairs i < j of a[i][j] - b[i][j], for two n x n matrices
    over the same n perturbations (I-F17: the same random starts without and with the penalty,
    so pair (i, j) is paired with itself). The pairs share perturbations, so they are not
    independent samples: the s.e. is the jackknife's over the perturbations (delete one
    perturbation, that is its n - 1 pairs, at a time), as for any mean over pairs. Needs n >= 3."""
    n = len(a)
    if n < 3:
        raise ValueError(f"a standard error over pairs needs at least 3 perturbations, got {n}")
    diff = {(i, j): a[i][j] - b[i][j] for i in range(n) for j in range(i + 1, n)}
    left_out = [_mean([v for (i, j), v in diff.items() if k not in (i, j)]) for k in range(n)]
    centre = _mean(left_out)
    return _mean(list(diff.values())), ((n - 1) / n * sum((v - centre) ** 2 for v in left_out)) ** 0.5


F17_SENTENCE = "remain similar, but with changes in spatial arrangements"
# "Remain similar": the penalty may lower the mean spectrum cosine (x100) by less than this, a tenth
# of the cosine's range (two independent noises score about 0, a shifted copy 100).
F17_MARGIN = 10.0


def _f17_tests(spectrum_fall: float, spectrum_se: float, pixel_fall: float, pixel_se: float) -> tuple:
    """I-F17's two tests, in cosine x100: the perturbations stay alike in what they are made of
    (an equivalence bound on the fall of the spectrum cosine, one-sided: growing more alike does
    not contradict "remain similar"), and their patterns move (the pixel cosine falls)."""
    similar = claims.below(
        spectrum_fall,
        spectrum_se,
        F17_MARGIN,
        what="the fall of the mean pairwise cosine between the perturbations' magnitude spectra in frequency "
        "bands (unchanged by a shift: what they are made of, wherever it lies)",
        unit="cosine x100",
    )
    moved = claims.above(
        pixel_fall,
        pixel_se,
        what="the fall of their mean pairwise cosine in pixel space (where their patterns lie)",
        unit="cosine x100",
    )
    return similar, moved


def _f17_similar(r: dict) -> claims.Verdict:
    """I-F17 as the paper states it: the penalised perturbations stay alike in content (magnitude
    spectra) while their spatial arrangement changes (pixel cosine), against the same random
    starts without the penalty, paired over the pairs of perturbations. Holds when both tests
    pass; in part when they remain similar without a measurable rearrangement; not when they do
    not remain similar (perturbations that part in content also part in pixels)."""
    d = r["diverse"]
    plain, pen = d["plain"], d["penalised"]
    m = len(plain["pixel"])
    similar, moved = _f17_tests(0.0, 0.0, 0.0, 0.0)  # for their wording
    common = {
        "claim": "the penalised perturbations remain similar, with their patterns rearranged",
        "test": "I-F17",
        "unit": "cosine x100",
        "criterion": claims.quoted(
            F17_SENTENCE,
            f"penalised against unpenalised pairs of perturbations (the same random starts, paired pair by pair; "
            f"s.e. by the jackknife over the perturbations), {similar.criterion}, and {moved.criterion}",
        ),
    }
    if m < 3:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail=f"{m} perturbations make {m * (m - 1) // 2} pair(s): a standard error needs at least 3",
        )
    if no_signal := _no_signal(r):
        return claims.Verdict(**common, effect=None, spread=None, status="cannot be tested", detail=no_signal)
    spectrum_fall, spectrum_se = (100 * v for v in pair_difference(plain["spectrum"], pen["spectrum"]))
    pixel_fall, pixel_se = (100 * v for v in pair_difference(plain["pixel"], pen["pixel"]))
    similar, moved = _f17_tests(spectrum_fall, spectrum_se, pixel_fall, pixel_se)
    return claims.Verdict(
        **common,
        effect=pixel_fall,
        spread=pixel_se,
        # a fall of the pixel cosine is a rearrangement only between perturbations that remain similar
        status=claims.outcome(similar.passed + (similar.passed and moved.passed), 2),
        detail=f"over {m * (m - 1) // 2} pairs of {m} perturbations: spectrum cosine "
        f"{_mean(_off_diagonal(plain['spectrum'])):.2f} without the penalty, "
        f"{_mean(_off_diagonal(pen['spectrum'])):.2f} with (fall {spectrum_fall:+.1f} ± {spectrum_se:.1f} x100); "
        f"pixel cosine {_mean(_off_diagonal(plain['pixel'])):.2f} without, {_mean(_off_diagonal(pen['pixel'])):.2f} "
        f"with (fall {pixel_fall:+.1f} ± {pixel_se:.1f} x100); the effect shown is the pixel cosine's fall",
    )


def _no_signal(r: dict) -> str:
    """Why I-F17 has no universal perturbations to compare ("" when it has): the unpenalised
    ones' mean test ASR is not above chance by more than claims.K_SE s.e."""
    d, n = r["diverse"], r["n_eval"]
    plain_asr, chance = _mean(d["plain"]["asr"]), d["chance"]
    se = claims.diff_se(claims.binomial_se(plain_asr, n * len(d["plain"]["asr"])), claims.binomial_se(chance, n))
    if claims.exceeds(plain_asr - chance, se):
        return ""
    return f"even without the penalty they do not beat chance ({100 * plain_asr:.1f}% against {100 * chance:.1f}%)"


def _diverse_verdicts(r: dict) -> list[claims.Verdict]:
    d, n = r["diverse"], r["n_eval"]
    plain, pen = d["plain"], d["penalised"]
    drop, se = claims.mean_se([p - q for p, q in zip(_pairs(plain), _pairs(pen))])
    pixel = _mean(_off_diagonal(plain["pixel"]))
    starts = (
        "random starts alone end in nearly the same perturbation"
        if pixel > 0.5
        else "random starts alone already give distinct perturbations"
    )
    found = [
        claims.Verdict(
            claim="the penalty gives universal perturbations that differ in representation space",
            test="I-F17",
            effect=100 * drop,
            spread=100 * se,
            unit="cosine x100",
            status="holds" if claims.exceeds(drop, se) and drop >= MIN_DROP else "does not hold",
            criterion=f"with the penalty, the mean pairwise |cosine| in representation space falls by at least "
            f"{MIN_DROP:g} and by more than {claims.K_SE} s.e. (over the pairs)",
            kind="sanity check",
            detail=f"{_mean(_pairs(plain)):.2f} without, {_mean(_pairs(pen)):.2f} with; pixel cosine {pixel:.2f} without, "
            f"{_mean(_off_diagonal(pen['pixel'])):.2f} with: {starts}",
        )
    ]
    m = len(pen["asr"])
    plain_asr, pen_asr, chance = _mean(plain["asr"]), _mean(pen["asr"]), d["chance"]
    common = {
        "claim": "the diverse perturbations still work",
        "test": "I-F17",
        "unit": "points",
        "criterion": f"the penalised perturbations' mean test ASR exceeds chance by more than {claims.K_SE} s.e.",
        "kind": "sanity check",
    }
    if no_signal := _no_signal(r):
        found.append(claims.Verdict(**common, effect=None, spread=None, status="cannot be tested", detail=no_signal))
        return found
    se = claims.diff_se(claims.binomial_se(pen_asr, n * m), claims.binomial_se(chance, n))
    found.append(
        claims.Verdict(
            **common,
            effect=100 * (pen_asr - chance),
            spread=100 * se,
            status="holds" if claims.exceeds(pen_asr - chance, se) else "does not hold",
            detail=f"mean ASR {100 * pen_asr:.1f}% with the penalty, {100 * plain_asr:.1f}% without, chance "
            f"{100 * chance:.1f}%",
        )
    )
    return found


def _subclass_verdict(r: dict) -> claims.Verdict:
    common = {
        "claim": "universal perturbations toward subclasses show subclass patterns",
        "test": "I-F18",
        "effect": None,
        "spread": None,
        "unit": "",
        "criterion": "needs data with fine-grained labels (ImageNet-M10's 60 classes) and a model trained on them",
    }
    if r["fine_classes"] is None:
        return claims.Verdict(
            **common,
            status="not applicable",
            detail=f"the data ({r['data_identity']}) has no fine-grained labels: its "
            f"{len(r['classes'])} classes have no subclasses to target",
        )
    return claims.Verdict(
        **common,
        status="cannot be tested",
        detail=f"the data has {r['fine_classes']} fine classes, but the book does not implement I-F18",
    )


def verdicts(rec: dict) -> list[claims.Verdict]:
    """I-F9: the solver's step size has no large impact (an equivalence margin), and a small base
    set overfits; I-A6: K augmentations of one image make a perturbation that works on new images and on a second
    model (beyond a standard perturbation of that image); I-F17: the penalised perturbations
    remain similar in content with their patterns rearranged (the paper's claim), and the checks
    that the penalty makes them differ in representation space and that they still work; I-F18:
    not applicable without fine labels."""
    r = rec["results"]
    return [
        _step_verdict(r),
        _overfit_verdict(r),
        *_augmented_verdicts(r),
        _f17_similar(r),
        *_diverse_verdicts(r),
        _subclass_verdict(r),
    ]
