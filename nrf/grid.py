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

from . import claims, constructed, models, store
from . import train as training
from .options import WIDTH_MAX, Option
from .runtime import default_device

DECAYS = ("none", "step", "onecycle")  # "step": one x0.1 drop half-way; "onecycle": see train.learning_rate

# The fresh models. Smoke: a narrow network, few epochs on a few hundred images, one seed (CI's
# budget). Medium: one-cycle for 15 epochs, chosen once by bench/constructed_schedule.py on the
# medium D_adv before any Section 5 run: at 25,000 images the training accuracy levels (99%) by
# epoch 8, and 30 epochs end 2 points higher (36.0% against 34.0%), within the test accuracy's
# epoch-to-epoch swings, for twice the compute; 3 seeds for D_adv and D_univ, 2 for the others.
MAIN = ("adv", "univ")  # the pair I-T3 decides, trained with seeds_main seeds
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
        {"smoke": 12, "medium": 15, "paper": 100},
        "their training epochs (the paper's 400: grids/paper-full.yaml); medium: 15, chosen by "
        "bench/constructed_schedule.py (one-cycle fits 25,000 D_adv images by epoch 8; 30 epochs: +2 points)",
        kind="int",
        low=1,
    ),
    Option(
        "seeds",
        {"smoke": 1, "medium": 2, "paper": 2},
        "fresh models per data set and setting, with seeds seed, seed + 1, ...",
        kind="int",
        low=1,
    ),
    Option(
        "seeds_main",
        {"smoke": 1, "medium": 3, "paper": 3},
        "the same for D_adv and D_univ (l2), the pair I-T3 decides",
        kind="int",
        low=1,
    ),
]
# The grid a section trains every data set over; smoke: two learning rates; medium: one point,
# one-cycle (see TRAINING). The
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


def seeds(cfg: dict, name: str) -> list[int]:
    """The seeds data set `name` is trained with: seeds_main of them for MAIN, else seeds."""
    return [cfg["seed"] + i for i in range(cfg["seeds_main"] if name in MAIN else cfg["seeds"])]


def run(cat: "constructed.Catalogue", names: list[str], cfg: dict) -> dict:
    """Every data set of `names` x every setting of the grid x its seeds (missing models trained
    here, one after the other), and per data set the point that won: {"points": [...], "best":
    {name: point}}. A point: dataset, lr, batch_size, decay, epochs, size, and per seed (lists in
    the order of "seeds") final_accs, best_epoch_accs, train_curves (training accuracy per
    epoch); final_acc, best_epoch_acc and final_train_acc are their means over the seeds. The
    grid is judged by mean final test accuracy, as the paper reports the best over its grid."""
    for name in names:
        cat.check(name)
    points, best = [], {}
    for name in names:
        for point in settings(cfg):
            runs = [train(cat, name, point, cfg["model_width"], seed) for seed in seeds(cfg, name)]
            row = {k: v for k, v in runs[0].items() if k not in ("history", "final_acc", "best_epoch_acc")}
            row |= {
                "seeds": seeds(cfg, name),
                "final_accs": [r["final_acc"] for r in runs],
                "best_epoch_accs": [r["best_epoch_acc"] for r in runs],
                "train_curves": [r["history"]["train_acc"] for r in runs],
            }
            row |= {
                "final_acc": claims.mean_se(row["final_accs"])[0],
                "best_epoch_acc": claims.mean_se(row["best_epoch_accs"])[0],
                "final_train_acc": claims.mean_se([c[-1] for c in row["train_curves"]])[0],
            }
            points.append(row)
            if name not in best or row["final_acc"] > best[name]["final_acc"]:
                best[name] = row
    return {"points": points, "best": best}


def spread(point: dict, n_test: int) -> float:
    """Standard error of a point's mean final test accuracy: the test set's binomial error
    (every seed is tested on the same images, so it does not average out) and the seed-to-seed
    spread, sqrt(binomial^2 + variance over seeds / n_seeds) (claims.mean_se; 0 with one seed, or
    for a hand-made point without per-seed accuracies)."""
    _, seed_se = claims.mean_se(point.get("final_accs", [point["final_acc"]]))
    return claims.diff_se(claims.binomial_se(point["final_acc"], n_test), seed_se)
