"""Trained models and their data, fetched from the artifact store or trained on a miss.

Every section asks for the models it needs by their training recipe; the first section that
asks trains them, later ones (and later builds) load them. The recipe names the data by its
content identity, not its path, so the same recipe gives the same key on every machine, and it
holds only what changes the weights: how a model is evaluated is keyed apart (`robust_accuracy`).

Trained models of a profile are also committed with its records (results/PROFILE/models/ROLE.pt
and ROLE.json, written by `nrf compute models --save`): `load(profile, role)` gives one without
data or training, and a store that lacks a recipe takes it from there before training it.
"""

import json
import time
from pathlib import Path

import torch

from . import data as nrf_data
from . import models, runtime, store, train
from .runtime import default_device

ROLES = ("natural", "natural_seed1", "robust", "vgg16", "vgg11")


def resolve_data(source: str) -> str:
    """'sample' (embedded), 'cifar10' (full CIFAR-10 where present), or a path, checked."""
    if source == "cifar10":
        found = nrf_data.full_cifar10_path()
        if found is None:
            raise ValueError(
                "data='cifar10' needs full CIFAR-10: set NRF_CIFAR10 to a cifar-10-batches-py root, "
                "an ImageFolder tree or its .tar.gz, or pass data='sample' for the embedded sample"
            )
        return str(found)
    return source


def load_data(source: str) -> tuple:
    """(train, test) Data for a data option."""
    source = resolve_data(source)
    return nrf_data.load_cifar10(source, "train"), nrf_data.load_cifar10(source, "test")


def recipe(cfg: dict, role: str, data_identity: str) -> dict:
    """The training recipe of one of the models the book uses, from a section's options
    (options.MODELS) and the precision it runs in, with the fingerprint of the code that trains it."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    robust = role == "robust"
    epochs = cfg["robust_epochs"] if robust else cfg["epochs"]
    eps = cfg["robust_eps"]
    return {
        "arch": {"vgg16": "vgg16", "vgg11": "vgg11"}.get(role, "resnet18"),
        "width": cfg["width"],
        "data": data_identity,
        "epochs": epochs,
        "lr": cfg["lr"],
        "batch_size": cfg["batch_size"],
        "schedule": cfg["schedule"],
        "milestones": [m for m in cfg["milestones"] or [] if m < epochs] if cfg["schedule"] == "step" else [],
        "weight_decay": cfg["weight_decay"],
        "seed": cfg["seed"] + (1 if role == "natural_seed1" else 0),
        "adv": {"norm": cfg["robust_norm"], "eps": eps, "steps": cfg["adv_steps"], "step_size": 2 / 3 * eps}
        if robust
        else None,
        "precision": runtime.current_precision(),  # the run's (its profile's): bf16 and fp32 weights differ
        # everything keyed by this recipe (perturbations, scores) is recomputed when training code changes
        "code": store.fingerprint(__name__),
    }


def evaluation(cfg: dict) -> dict:
    """The robust-accuracy attack of a section's options: untargeted PGD at the robust eps."""
    eps = cfg["robust_eps"]
    return {
        "norm": cfg["robust_norm"],
        "eps": eps,
        "steps": cfg["eval_steps"],
        "step_size": 2.5 * eps / cfg["eval_steps"],
    }


def trained(spec: dict, train_data, test_data, device: torch.device | None = None):
    """(model, meta) for a recipe: loaded from the store, or trained (resumably) and stored.
    meta: the recipe, its training history, clean test accuracy and training seconds."""
    device = device or default_device()
    if train_data.identity != spec["data"]:
        raise ValueError(f"spec was made for data {spec['data']!r}, got {train_data.identity!r}")

    def compute(workdir: Path) -> dict:
        if (found := _committed(spec, test_data.identity)) is not None:
            return found
        start = time.perf_counter()
        model = models.build(
            spec["arch"], num_classes=len(train_data.classes), width=spec["width"], seed=spec["seed"]
        ).to(device)
        history = train.train(
            model,
            train_data,
            test_data,
            epochs=spec["epochs"],
            lr=spec["lr"],
            batch_size=spec["batch_size"],
            milestones=spec["milestones"],
            schedule=spec["schedule"],
            weight_decay=spec["weight_decay"],
            adv=spec["adv"],
            seed=spec["seed"],
            checkpoint=workdir / "checkpoint.pt",
            device=device,
        )
        meta = {
            **spec,
            "test_data": test_data.identity,
            "history": history,
            "train_seconds": time.perf_counter() - start,
            "clean_acc": train.accuracy(model, test_data.x.to(device), test_data.y.to(device)),
        }
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}

    result = store.fetch("models", {**spec, "test": test_data.identity}, compute)
    model = models.build(spec["arch"], num_classes=len(train_data.classes), width=spec["width"], seed=spec["seed"])
    model.load_state_dict(result["state_dict"])
    return _ready(model, device), result["meta"]


def _ready(model, device: torch.device):
    """Eval mode on `device`, channels_last: the attacks and evaluations that follow run faster
    in it, on CPU and GPU."""
    return model.to(device, memory_format=torch.channels_last).eval()


def zoo_dir(profile: str) -> Path:
    """The committed models of a profile."""
    return store.results_root() / profile / "models"


def export(spec: dict, test_identity: str, path: Path, extra: dict) -> Path:
    """Write the stored model of recipe `spec` as path.pt (weights and meta, models.save) and
    path.json (the meta alone, for readers and lookup): its recipe, history, accuracies, `extra`."""
    result = store.load("models", {**spec, "test": test_identity}, __name__)
    if result is None:
        raise ValueError(f"no stored model for the recipe of {Path(path).name}: compute the models section first")
    path = Path(path)
    model = models.build(spec["arch"], num_classes=len(result["state_dict"]["head.bias"]), width=spec["width"])
    model.load_state_dict(result["state_dict"])
    meta = {**result["meta"], **extra, **model.config}
    models.save(path.with_suffix(".pt"), model, meta)
    runtime.write_atomic(path.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode())
    return path.with_suffix(".json")


def load(profile: str, role: str, device: torch.device | None = None):
    """(model, meta) of a committed model, e.g. load("medium", "natural"): no data, no training.
    meta: the recipe, training history, clean and robust test accuracy."""
    path = zoo_dir(profile) / f"{role}.pt"
    if not path.exists():
        have = sorted(p.stem for p in zoo_dir(profile).glob("*.pt"))
        raise ValueError(f"no committed {profile} model {role!r} (committed: {have or 'none'})")
    model, meta = models.load(path, device="cpu")
    return _ready(model, device or default_device()), meta


def _committed(spec: dict, test_identity: str) -> dict | None:
    """A committed model of exactly this recipe (and test set), as a store result, or None."""
    for path in sorted(store.results_root().glob("*/models/*.json")):
        meta = json.loads(path.read_text())
        if {k: meta.get(k) for k in spec} == spec and meta.get("test_data") == test_identity:
            print(f"nrf.zoo: {path.stem} taken from the committed {path.parent.parent.name} models")
            model, meta = models.load(path.with_suffix(".pt"), device="cpu")
            return {
                "state_dict": model.state_dict(),
                "meta": {k: meta[k] for k in ("test_data", "history", "train_seconds", "clean_acc", *spec)},
            }
    return None


def robust_accuracy(model, spec: dict, test_data, attack: dict) -> float:
    """Accuracy of the model of recipe `spec` under `attack` (see evaluation), from the store."""
    device = runtime.device_of(model)

    def compute(_workdir) -> dict:
        x, y = test_data.x.to(device), test_data.y.to(device)
        return {"acc": train.robust_accuracy(model, x, y, **attack)}

    return store.fetch("robust-accuracy", {"model": spec, "test": test_data.identity, **attack}, compute)["acc"]
