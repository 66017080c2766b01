"""Section "Gallery" (I-F1, I-F2, I-F12, I-F13): what targeted universal perturbations look like.

I-F2 shows the universal perturbation of every target class with its test ASR and the chance
level (the share of test images the model predicts as the target anyway). I-F1 puts, for two
targets, a standard per-image perturbation next to the universal one and a zoom on the
universal perturbation's best patch (scored by the Locality section, whose cache it shares).
I-F12 (VGG11) and I-F13 (linf) repeat I-F2 for another model and threat model.
"""

import torch

from .. import attacks, profiles, store, universals, zoo
from ..data import to_float
from ..runtime import default_device, generator
from . import locality

ARCHS = {"resnet18": "natural", "vgg11": "vgg11"}  # architecture -> role of the natural model
# I-F1's targets, fixed before looking at any perturbation: the two CIFAR-10 classes that
# ImageNet-M10, the paper's data set, also has (dog, car), so the figures can be compared.
DEFAULT_PAIR = ("dog", "automobile")
EXTRA_GALLERIES = {"I-F12": ("vgg11", "l2"), "I-F13": ("resnet18", "linf")}  # id -> (arch, norm)
EXTRAS = {"smoke": False, "paper": True}  # render the extra galleries by default?
PGD_STEPS = 10  # the paper's standard perturbation: 10 steps of eps / 3, no restarts


def _clean_predictions(model, spec: dict, test_data) -> dict:
    """C(x) for every test image (the chance level and I-F1's choice of image need them)."""
    params = {"what": "clean predictions", "model": spec, "test": test_data.identity}
    result = store.fetch("gallery", params, lambda _w: {"pred": attacks.predict(model, test_data.x)})
    return {**result, "hardware": store.meta("gallery", params)["hardware"]}


def gallery(arch: str, norm: str, eps: float, cfg: dict, train_data, test_data, targets: list[int], solver: dict,
            device, progress: bool) -> dict:
    """The universal perturbation of every target for the natural `arch` model, with its test
    ASR and chance level: {"arch", "norm", "eps", "targets", "deltas", "asr", "chance", "hardware", ...}."""
    spec = zoo.recipe(cfg, ARCHS[arch], train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
    uni = universals.per_target(model, spec, train_data, test_data, profile=cfg["profile"], norm=norm, eps=eps,
                                targets=targets, seed=cfg["seed"], progress=progress, **solver)
    clean = _clean_predictions(model, spec, test_data)
    chance = torch.tensor([(clean["pred"] == t).float().mean().item() for t in targets])
    hardware = {meta["provenance"]["hardware"], clean["hardware"], uni["hardware"]}
    return {"arch": arch, "norm": norm, "eps": eps, "targets": targets, "deltas": uni["deltas"],
            "asr": torch.tensor(uni["asr"]), "chance": chance, "clean_acc": meta["clean_acc"],
            "model": model, "spec": spec, "universal": uni, "clean_pred": clean["pred"], "hardware": hardware}


def compare(gal: dict, test_data, pair: list[int], image_seed: int) -> dict:
    """I-F1: a standard targeted PGD perturbation toward each target of `pair` on one test image
    (seeded pick among the correctly classified images of neither class), and where the
    universal perturbation of the same target sends that image."""
    norm, eps = gal["norm"], gal["eps"]
    params = {"what": "standard vs universal", "model": gal["spec"], "test": test_data.identity, "norm": norm,
              "eps": eps, "pair": pair, "image_seed": image_seed, "steps": PGD_STEPS, "step_size": eps / 3,
              "universal": locality.fingerprint(gal["deltas"])}

    def compute(_workdir) -> dict:
        pred, y = gal["clean_pred"], test_data.y
        ok = ((pred == y) & ~torch.isin(y, torch.tensor(pair))).nonzero().flatten()
        if len(ok) == 0:
            raise ValueError(f"no correctly classified test image outside the classes {pair} to perturb")
        pick = int(ok[torch.randint(len(ok), (1,), generator=generator(image_seed))])
        x = test_data.x[pick:pick + 1].repeat(len(pair), 1, 1, 1)
        standard = attacks.pgd(gal["model"], x, torch.tensor(pair), norm=norm, eps=eps, steps=PGD_STEPS, seed=image_seed)
        universal = gal["deltas"][[gal["targets"].index(t) for t in pair]]
        x = to_float(x)
        return {"image": pick, "label": int(y[pick]), "standard": standard.cpu(),
                "standard_pred": attacks.predict(gal["model"], (x + standard).clamp(0, 1)),
                "universal_pred": attacks.predict(gal["model"], (x + universal).clamp(0, 1))}

    return {**store.fetch("gallery", params, compute), "hardware": store.meta("gallery", params)["hardware"]}


def run(profile: str = "smoke", *, arch="resnet18", norm=None, eps=None, pair=None, image_seed=0, targets=None,
        extras=None, solver=None, device=None, progress: bool = True, **overrides) -> dict:
    """The gallery of universal perturbations (I-F2), the standard-vs-universal comparison (I-F1)
    and, if `extras`, the galleries of I-F12 (VGG11, l2) and I-F13 (ResNet-18, linf).

    arch: "resnet18" or "vgg11" (the natural model attacked). norm / eps: the threat model
    (None: the profile's l2 eps; linf defaults to 8/255). pair: I-F1's two targets (names or
    indices; None: DEFAULT_PAIR). image_seed: picks I-F1's test image. targets: the classes
    of the galleries (None: all). extras: None means EXTRAS[profile]. solver: overrides of
    universals.SOLVER[profile]. overrides: profile settings of the models (data, width, ...).
    """
    cfg = profiles.settings(profile, **overrides)
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    norm, eps = locality.threat(cfg, norm, eps)
    extras = EXTRAS[profile] if extras is None else extras
    if not isinstance(extras, bool):
        raise ValueError(f"extras must be True, False or None, got {extras!r}")
    if not isinstance(image_seed, int):
        raise ValueError(f"image_seed must be an integer, got {image_seed!r}")
    solver = locality.check_solver(profile, solver)
    train_data, test_data = zoo.load_data(cfg["data"])
    classes = train_data.classes
    targets = locality.class_indices(targets, classes)
    pair = [locality.class_index(t, classes, "pair") for t in (DEFAULT_PAIR if pair is None else pair)]
    if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(targets):
        raise ValueError(f"pair must be two different classes among targets {[classes[t] for t in targets]}, "
                         f"got {[classes[t] for t in pair]}")
    opts = locality.patch_options(profile, train_data.x.shape[-1], len(test_data))

    device = device or default_device()
    main = gallery(arch, norm, eps, cfg, train_data, test_data, targets, solver, device, progress)
    scores = locality.score_patches(main["model"], main["spec"], main["universal"], test_data, norm=norm,
                                    progress=progress, **opts)
    versus = compare(main, test_data, pair, image_seed)
    rows = [targets.index(t) for t in pair]
    best = scores["asr"][rows].argmax(1)
    versus.update(pair=pair, best_corner=scores["corners"][best], best_asr=scores["asr"][rows, best],
                  patch_size=scores["size"], patch_chance=scores["chance"][rows], n_patches=opts["n_patches"],
                  n_eval=len(scores["eval_index"]))
    hardware = main["hardware"] | {scores["hardware"], versus["hardware"]}
    more = {}
    for name, (a, nm) in EXTRA_GALLERIES.items() if extras else ():
        if (a, nm) != (arch, norm):
            more[name] = gallery(a, nm, locality.threat(cfg, nm, None)[1], cfg, train_data, test_data, targets, solver,
                                 device, progress)
            hardware |= more[name]["hardware"]
    strip = ("model", "universal", "clean_pred", "hardware")
    return {"cfg": cfg, "train": train_data, "test": test_data, "classes": classes,
            "main": {k: v for k, v in main.items() if k not in strip}, "compare": versus,
            "extras": {k: {n: v for n, v in g.items() if n not in strip} for k, g in more.items()},
            "hardware": hardware}
