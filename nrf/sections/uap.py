"""Section "Universal adversarial perturbations" (Part II, CVPR 2017): Algorithm 1 and its
main experiments on CIFAR-10 (II-A1, II-T1, II-T2, II-F3, II-F4).

Every perturbation is untargeted, computed with Algorithm 1 (`attacks.uap`) on a set X of
training images much smaller than the training set and scored on held-out test images by its
fooling rate P(C(x + v) != C(x)). Each perturbation is one store artifact keyed by what made
it (`universal`), so this section, the next one and later builds share them.

Radii. The 2017 paper used xi = 2000 (l2) and 10 (linf) on [0, 255] ImageNet images of
224 x 224 x 3 pixels. linf is a per-pixel bound: 10 / 255 carries over unchanged. An l2 radius
scales with the square root of the pixel count: 2000 / 255 / sqrt(224 * 224 * 3) is a
root-mean-square of 0.020 per pixel, which on 32 x 32 x 3 CIFAR-10 images is an l2 radius
of 1.12; we take 1.0, the CIFAR-10 l2 threat model of Part I, so both parts share a scale.
"""

import time

import torch
from tqdm.auto import tqdm

from .. import attacks, profiles, store, zoo
from ..data import Data, to_float
from ..runtime import default_device, generator

XI = {"l2": 1.0, "linf": 10 / 255}
OVERSHOOT = 0.02  # DeepFool's overshoot in Algorithm 1, as in the authors' code
CHANCE_SEED = 12345  # the random-direction baseline, one draw per norm

# How Algorithm 1 runs, per profile: X has n_train images, at most max_passes passes over it,
# stopping once it fools a share 1 - delta of X (the authors' delta = 0.2); batch_size
# images of X go through DeepFool together in the batched version.
SOLVER = {
    "smoke": {"n_train": 100, "max_passes": 3, "delta": 0.2, "uap_batch": 32, "uap_seed": 0},
    "paper": {"n_train": 1000, "max_passes": 10, "delta": 0.2, "uap_batch": 128, "uap_seed": 0},
}
# This section's experiments, per profile. n_eval None: the whole test split. The smoke
# profile runs the faithful per-image loop on fewer images and draws F3 from fewer sizes.
DEFAULTS = {
    "smoke": {**SOLVER["smoke"], "norms": ["l2", "linf"], "xi_l2": XI["l2"], "xi_linf": XI["linf"],
              "archs": ["natural", "vgg16", "vgg11"], "n_eval": None, "sizes": [25, 50, 100, 200],
              "compare_n": 50},
    "paper": {**SOLVER["paper"], "norms": ["l2", "linf"], "xi_l2": XI["l2"], "xi_linf": XI["linf"],
              "archs": ["natural", "vgg16", "vgg11"], "n_eval": None, "sizes": [100, 250, 500, 1000, 2000, 4000],
              "compare_n": 500},
}
NAMES = {"natural": "ResNet-18", "natural_seed1": "ResNet-18 (seed 1)", "robust": "ResNet-18 (robust)",
         "vgg16": "VGG16", "vgg11": "VGG11"}


def _int_list(name, value):
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    for v in value:
        profiles.positive_int(name, v)
    if len(set(value)) != len(value):
        raise ValueError(f"{name} must not repeat a value, got {value!r}")
    return sorted(value)


def _norm_list(name, value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value \
            or not set(value) <= set(profiles.NORMS) or len(set(value)) != len(value):
        raise ValueError(f"{name} must be a non-empty list of distinct norms from {profiles.NORMS}, got {value!r}")
    return list(value)


def check_option(name, value):
    """Validate one Part II option (of this section or uap_analysis); returns it normalised."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name in ("xi_l2", "xi_linf", "ft_lr"):
        if not number or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        return float(value)
    if name == "delta":
        if not number or not 0 <= value < 1:
            raise ValueError(f"delta must be a number in [0, 1) (stop at fooling rate 1 - delta), got {value!r}")
        return float(value)
    if name == "uap_seed":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if name in ("n_eval", "ft_size"):  # None: all images
        if value is not None:
            profiles.positive_int(name, value)
        return value
    if name == "norms":
        return _norm_list(name, value)
    if name == "norm":
        if value not in profiles.NORMS:
            raise ValueError(f"norm must be one of {profiles.NORMS}, got {value!r}")
        return value
    if name == "archs":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value \
                or not set(value) <= set(zoo.ROLES) or len(set(value)) != len(value):
            raise ValueError(f"archs must be a non-empty list of distinct model roles from {zoo.ROLES}, got {value!r}")
        return list(value)
    if name in ("sizes", "dims"):
        return _int_list(name, value)
    if name == "scales":
        if not isinstance(value, (list, tuple)) or not value or any(
                isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0 for s in value):
            raise ValueError(f"scales must be a non-empty list of positive multiples of xi, got {value!r}")
        return sorted(float(s) for s in value)
    if name == "recompute":
        if not isinstance(value, bool):
            raise ValueError(f"recompute must be True or False, got {value!r}")
        return value
    profiles.positive_int(name, value)  # n_train, max_passes, uap_batch, compare_n, draws, rounds, ...
    return value


def options(profile: str, params: dict, defaults: dict) -> tuple[dict, dict]:
    """Split run()'s keyword parameters into this section's options (validated, None = the
    profile's default) and the profile settings overrides (checked by profiles.settings)."""
    if profile not in defaults:
        raise ValueError(f"profile must be one of {sorted(defaults)}, got {profile!r}")
    opts = dict(defaults[profile])
    for name in list(params):
        if name in opts:
            value = params.pop(name)
            if value is not None:
                opts[name] = value
    opts = {name: check_option(name, value) for name, value in opts.items()}
    return opts, params


def pick(data: Data, n: int, seed: int) -> torch.Tensor:
    """Indices of the first n of a seeded permutation of `data`: sets of growing n are nested."""
    if not 0 < n <= len(data):
        raise ValueError(f"asked for {n} images of {data.identity}, which has {len(data)}")
    return torch.randperm(len(data), generator=generator(seed))[:n]


def universal(model, spec: dict, train_data: Data, *, n: int, norm: str, xi: float, max_passes: int,
              delta: float, batch_size: int, seed: int, progress: bool = True) -> tuple[dict, dict]:
    """Batched Algorithm 1 on the first n images of a seeded draw of the training set, from the
    store: ({"v" [C,H,W], "history" (fooling rate on X after each pass), "index", "seconds"}, params)."""
    params = {"model": spec, "n": n, "norm": norm, "xi": xi, "max_passes": max_passes, "delta": delta,
              "batch_size": batch_size, "overshoot": OVERSHOOT, "seed": seed}

    def compute(_workdir):
        index = pick(train_data, n, seed)
        start = time.perf_counter()
        v, history = attacks.uap(model, train_data.x[index], xi=xi, norm=norm, delta=delta, max_passes=max_passes,
                                 overshoot=OVERSHOOT, batched=True, batch_size=batch_size, seed=seed,
                                 progress=progress)
        return {"v": v.cpu(), "history": list(history), "index": index, "seconds": time.perf_counter() - start}

    return store.fetch("uap-perturbation", params, compute), params


def random_direction(norm: str, radius: float, shape, generator) -> torch.Tensor:
    """Random perturbations [D, C, H, W] of the given norm: l2, uniform on the sphere (normalised
    Gaussian); linf, uniform random signs (random vertices of the cube, the largest in l2)."""
    z = torch.randn(shape, generator=generator)
    if norm == "linf":
        return radius * z.sign()
    return radius * z / z.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def predictions(model, spec: dict, test_data: Data, n_eval: int | None, perturbations: dict,
                device, progress: bool = True) -> tuple[dict, dict]:
    """C(clip(x + v)) on the evaluation images (all test images, or a seeded n_eval of them) for
    every named perturbation (name -> (store key, v [C,H,W])) plus "clean", from the store."""
    names = sorted(perturbations)
    params = {"model": spec, "test": test_data.identity, "n_eval": n_eval,
              "perturbations": {name: perturbations[name][0] for name in names}}

    def compute(_workdir):
        x = to_float(test_data.x[eval_index(test_data, n_eval)].to(device))
        out = {"clean": attacks.predict(model, x).cpu()}
        for name in tqdm(names, desc="evaluate", disable=not progress):
            out[name] = attacks.predict(model, (x + perturbations[name][1].to(device)).clamp(0, 1)).cpu()
        return out

    return store.fetch("uap-predictions", params, compute), params


def eval_index(test_data: Data, n_eval: int | None) -> torch.Tensor:
    """The evaluation images: the whole test split, or a seeded draw of n_eval of it (the split is
    sorted by class, so a prefix would not do)."""
    return torch.arange(len(test_data)) if n_eval is None else pick(test_data, n_eval, 0)


def hardware_of(section: str, params: dict) -> str:
    return store.meta(section, params)["hardware"]


def load_models(cfg, roles, train_data, test_data, device, progress):
    """{role: (model, spec, meta)} from the zoo (trained by the Models section, or here on a miss)."""
    out = {}
    for role in roles:
        spec = zoo.recipe(cfg, role, train_data.identity)
        model, meta = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
        out[role] = (model, spec, meta)
    return out


def run(profile: str = "smoke", *, device=None, progress: bool = True, **params) -> dict:
    """Compute (or load) every result of the section; returns what the page renders.

    Parameters: this section's options (see DEFAULTS; None = the profile's value) and the
    profile's model settings (data, width, epochs, seed, ...; see nrf.profiles)."""
    opts, overrides = options(profile, params, DEFAULTS)
    cfg = profiles.settings(profile, **overrides)
    device = torch.device(device) if device is not None else default_device()
    train_data, test_data = zoo.load_data(cfg["data"])
    for name in ("n_train", "compare_n"):
        if opts[name] > len(train_data):
            raise ValueError(f"{name} must be at most the {len(train_data)} training images, got {opts[name]}")
    if opts["sizes"][-1] > len(train_data):
        raise ValueError(f"sizes must be at most the {len(train_data)} training images, got {opts['sizes']}")
    if opts["n_eval"] is not None and opts["n_eval"] > len(test_data):
        raise ValueError(f"n_eval must be at most the {len(test_data)} test images, got {opts['n_eval']}")

    nets = load_models(cfg, opts["archs"], train_data, test_data, device, progress)
    hardware = {meta["provenance"]["hardware"] for _, _, meta in nets.values()}
    xi = {"l2": opts["xi_l2"], "linf": opts["xi_linf"]}
    solver = {"max_passes": opts["max_passes"], "delta": opts["delta"], "batch_size": opts["uap_batch"],
              "seed": opts["uap_seed"], "progress": progress}
    first = opts["archs"][0]
    size_norm = "l2" if "l2" in opts["norms"] else opts["norms"][0]

    # II-T1 / II-T2 / II-F4: one perturbation per architecture and norm; II-F3: per size of X.
    found = {}  # name -> (result, params)
    for role in opts["archs"]:
        model, spec, _ = nets[role]
        for norm in opts["norms"]:
            found[f"{role}/{norm}"] = universal(model, spec, train_data, n=opts["n_train"], norm=norm, xi=xi[norm],
                                                **solver)
    for n in opts["sizes"]:
        model, spec, _ = nets[first]
        found[f"{first}/{size_norm}/n={n}"] = universal(model, spec, train_data, n=n, norm=size_norm,
                                                        xi=xi[size_norm], **solver)
    hardware |= {hardware_of("uap-perturbation", p) for _, p in found.values()}
    gen = generator(CHANCE_SEED)
    chance = {f"random/{norm}": (f"{CHANCE_SEED}/{norm}/{xi[norm]}",
                                 random_direction(norm, xi[norm], (1, *train_data.x.shape[1:]), gen)[0])
              for norm in profiles.NORMS}
    pert = {name: (store.key("uap-perturbation", p), r["v"]) for name, (r, p) in found.items()}

    # Predictions of every model on every perturbation (sizes only on the first model).
    preds = {}
    for role in opts["archs"]:
        model, spec, _ = nets[role]
        wanted = {k: v for k, v in {**pert, **chance}.items() if "n=" not in k or role == first}
        preds[role], p = predictions(model, spec, test_data, opts["n_eval"], wanted, device, progress)
        hardware.add(hardware_of("uap-predictions", p))

    def fooling(role, name):
        return (preds[role][name] != preds[role]["clean"]).float().mean().item()

    y = test_data.y[eval_index(test_data, opts["n_eval"])]
    classes = len(train_data.classes)
    table, transfer, dominant, perturbations, histories = {}, {}, {}, {}, {}
    for norm in opts["norms"]:
        transfer[norm] = torch.tensor([[fooling(tgt, f"{src}/{norm}") for tgt in opts["archs"]]
                                       for src in opts["archs"]])
        for role in opts["archs"]:
            r, _ = found[f"{role}/{norm}"]
            clean, after = preds[role]["clean"], preds[role][f"{role}/{norm}"]
            fooled = after != clean
            counts = torch.zeros(classes, classes, dtype=torch.long)
            counts.index_put_((y[fooled], after[fooled]), torch.ones(int(fooled.sum()), dtype=torch.long),
                              accumulate=True)
            dominant[(role, norm)] = counts  # [true class, label after the perturbation], fooled images only
            perturbations[(role, norm)], histories[(role, norm)] = r["v"], r["history"]
            table[(role, norm)] = {"train_fooling": r["history"][-1], "test_fooling": fooling(role, f"{role}/{norm}"),
                                   "chance": fooling(role, f"random/{norm}"), "passes": len(r["history"]),
                                   "seconds": r["seconds"]}
    sizes = {"n": opts["sizes"], "norm": size_norm,
             "test_fooling": [fooling(first, f"{first}/{size_norm}/n={n}") for n in opts["sizes"]],
             "train_fooling": [found[f"{first}/{size_norm}/n={n}"][0]["history"][-1] for n in opts["sizes"]],
             "chance": fooling(first, f"random/{size_norm}")}

    model, spec, _ = nets[first]
    comparison, p = compare(model, spec, train_data, test_data, n=opts["compare_n"], norm=size_norm,
                            xi=xi[size_norm], n_eval=opts["n_eval"], device=device, **solver)
    hardware.add(hardware_of("uap-compare", p))
    return {"cfg": cfg, "opts": opts, "train": train_data, "test": test_data, "hardware": hardware,
            "models": {role: meta for role, (_, _, meta) in nets.items()}, "xi": xi, "names": NAMES,
            "table": table, "transfer": transfer, "dominant": dominant, "perturbations": perturbations,
            "histories": histories, "sizes": sizes, "compare": comparison}


def compare(model, spec: dict, train_data: Data, test_data: Data, *, n: int, norm: str, xi: float, n_eval,
            device, max_passes: int, delta: float, batch_size: int, seed: int, progress: bool = True):
    """II-A1: Algorithm 1 as a per-image loop and batched, back to back on the same model, X and
    xi, timed here (so both run on the same hardware): {"faithful": ..., "batched": ...}."""
    params = {"model": spec, "n": n, "norm": norm, "xi": xi, "max_passes": max_passes, "delta": delta,
              "batch_size": batch_size, "overshoot": OVERSHOOT, "seed": seed, "test": test_data.identity,
              "n_eval": n_eval}

    def compute(_workdir):
        x = train_data.x[pick(train_data, n, seed)]
        x_test = to_float(test_data.x[eval_index(test_data, n_eval)].to(device))
        out = {}
        for batched in (False, True):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            v, history = attacks.uap(model, x, xi=xi, norm=norm, delta=delta, max_passes=max_passes,
                                     overshoot=OVERSHOOT, batched=batched, batch_size=batch_size, seed=seed,
                                     progress=progress)
            seconds = time.perf_counter() - start  # uap's history reads the fooling rate: the device is synced
            out["batched" if batched else "faithful"] = {
                "v": v.cpu(), "history": list(history), "seconds": seconds,
                "test_fooling": attacks.fooling_rate(model, x_test, v.to(device))}
        return out

    return store.fetch("uap-compare", params, compute), params
