"""Fresh ResNet-18s trained on the constructed data sets, one per point of a hyperparameter grid,
and tested on the original, clean test set (PAPER.md, "Models and training").

The paper trains on each constructed data set with every setting of lr x batch size x {no
decay, one x0.1 drop}, standard augmentation and weight decay 5e-4, and reports the best test
accuracy over the grid and which setting won (I-T8). `train` is one point: its result is kept
in the store under kind "constructed-training", keyed by the data set's identity and the
setting, so a point trained by `nrf sweep constructed_training` (one notebook per point, in
parallel) and the same point trained inside a page's run are one artifact.
"""

import itertools

from . import constructed, models, store
from . import train as training
from .options import WIDTH_MAX, Option
from .runtime import default_device

DECAYS = ("none", "step", "onecycle")  # "step": one x0.1 drop half-way; "onecycle": see train.learning_rate

# The fresh models. Smoke: a narrow network and few epochs on a few hundred images.
TRAINING = [
    Option(
        "model_width",
        {"smoke": 8, "medium": 16, "paper": 64},
        "width of the fresh ResNet-18s trained on constructed data",
        kind="int",
        low=1,
        high=WIDTH_MAX,
    ),
    Option(
        "train_epochs",
        {"smoke": 12, "medium": 30, "paper": 100},
        "their training epochs (the paper's 400: grids/paper-full.yaml)",
        kind="int",
        low=1,
    ),
]
# The grid a section trains every data set over; smoke: two learning rates; medium: one point,
# one-cycle over 30 epochs (a few thousand images: 30 epochs are still only ~600 steps). The
# paper's grid (3 lrs x 2 batches x 2 schedules, 400 epochs: about 10.7 EFLOP, nearly all of the
# paper profile) is what the SLURM sweep runs, one option file away (`--params
# grids/paper-full.yaml`); the paper profile's default is its usual point, SGD lr 0.1, batch 128,
# one x0.1 drop, for a quarter of the epochs (about 0.2 EFLOP for the twelve data sets).
GRID = [
    Option(
        "lrs",
        {"smoke": [0.05, 0.1], "medium": [0.1], "paper": [0.1]},
        "learning rates of the grid",
        kind="floats",
        low=1e-12,
    ),
    Option(
        "batch_sizes", {"smoke": [128], "medium": [128], "paper": [128]}, "batch sizes of the grid", kind="ints", low=1
    ),
    Option(
        "decays",
        {"smoke": ["none"], "medium": ["onecycle"], "paper": ["step"]},
        "schedules of the grid: none, step (one x0.1 drop half-way) or onecycle",
        kind="strs",
        choices=DECAYS,
    ),
]


def setting(lr: float, batch_size: int, decay: str, epochs: int, option: str = "decay") -> dict:
    """One point's training setting, checked (a step decay needs two epochs)."""
    if decay == "step" and epochs < 2:
        raise ValueError(f"option {option} 'step' needs train_epochs >= 2, got {epochs}")
    return {"lr": float(lr), "batch_size": int(batch_size), "decay": decay, "epochs": int(epochs)}


def settings(cfg: dict) -> list[dict]:
    """Every setting of the grid of a section's resolved options (TRAINING and GRID)."""
    for name in ("lrs", "batch_sizes", "decays"):
        if len(set(cfg[name])) != len(cfg[name]):
            raise ValueError(f"option {name} must hold distinct values, got {cfg[name]!r}")
    return [
        setting(lr, b, d, cfg["train_epochs"], "decays")
        for lr, b, d in itertools.product(cfg["lrs"], cfg["batch_sizes"], cfg["decays"])
    ]


def train(cat: "constructed.Catalogue", name: str, point: dict, width: int, seed: int) -> dict:
    """A fresh ResNet-18 of `width` trained on variant `name` of a built catalogue with setting
    `point` (see setting) and tested after every epoch: from the store, or trained now.
    Returns the setting, the training set's size, the history, final and best-epoch test accuracy."""
    cat.check(name)
    params = {"data": cat.identity(name), "test": cat.test.identity, "model_width": width, "seed": seed, **point}

    def compute(workdir) -> dict:
        data, device = cat.dataset(name), default_device()
        model = models.build("resnet18", num_classes=len(data.classes), width=width, seed=seed).to(device)
        history = training.train(
            model,
            data,
            cat.test,
            epochs=point["epochs"],
            lr=point["lr"],
            batch_size=point["batch_size"],
            milestones=[point["epochs"] // 2] if point["decay"] == "step" else [],
            schedule="onecycle" if point["decay"] == "onecycle" else "step",
            seed=seed,
            checkpoint=workdir / "checkpoint.pt",
            device=device,
        )
        return {"history": history}

    history = store.fetch("constructed-training", params, compute)["history"]
    return {
        "dataset": name,
        **point,
        "size": cat.size(name),
        "history": history,
        "final_acc": history["test_acc"][-1],
        "best_epoch_acc": max(history["test_acc"]),
    }


def run(cat: "constructed.Catalogue", names: list[str], cfg: dict) -> dict:
    """Every data set of `names` x every setting of the grid (missing points trained here, one
    after the other), and per data set the point that won: {"points": [...], "best": {name:
    point}}. A point: dataset, lr, batch_size, decay, epochs, size, final_acc, best_epoch_acc,
    final_train_acc. The grid is judged by final test accuracy, as the paper reports the best
    over its grid."""
    for name in names:
        cat.check(name)
    points, best = [], {}
    for name in names:
        for point in settings(cfg):
            out = train(cat, name, point, cfg["model_width"], cfg["seed"])
            row = {k: v for k, v in out.items() if k != "history"}
            row["final_train_acc"] = out["history"]["train_acc"][-1]
            points.append(row)
            if name not in best or row["final_acc"] > best[name]["final_acc"]:
                best[name] = row
    return {"points": points, "best": best}
