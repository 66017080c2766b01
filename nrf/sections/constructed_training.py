"""One sweep point: a fresh ResNet-18 trained on one constructed data set with one setting of
the hyperparameter grid, tested on the original, clean test set.

The Generalisation, Interpolation and Leakage sections run this over their grids with
`nrf sweep constructed_training` (one executed notebook per point, points in parallel) and then
read every point back from the store with `collect`.
"""

import itertools
import os

from .. import models, profiles, store, sweep, train
from ..runtime import default_device
from . import constructed

# Per-profile defaults. The paper: a grid of lr x batch x {no decay, one x0.1 drop} with
# standard augmentation and weight decay 5e-4, 400 epochs, best test accuracy over the grid.
# Smoke: two learning rates, a narrow network and few epochs on a few hundred images.
DEFAULTS = {
    "smoke": {"model_width": 8, "train_epochs": 12,
              "grid": {"lr": [0.05, 0.1], "batch_size": [128], "decay": ["none"]}},
    "paper": {"model_width": 64, "train_epochs": 400,
              "grid": {"lr": [0.01, 0.05, 0.1], "batch_size": [128, 256], "decay": ["none", "step"]}},
}
DECAYS = ("none", "step")  # "step": one x0.1 drop half-way


def check_setting(lr, batch_size, decay) -> None:
    """One point of the grid, checked."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    profiles.positive_int("batch_size", batch_size)
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")


def run(profile: str = "smoke", *, dataset: str = "univ", lr: float = 0.1, batch_size: int = 128,
        decay: str = "none", train_epochs: int | None = None, model_width: int | None = None,
        construction: dict | None = None, device=None, progress: bool = True, **overrides) -> dict:
    """Train on constructed data set `dataset` (a name of constructed.catalogue) and test.

    construction: the Constructed section's parameters (n_source, Ks, ...; None: its defaults).
    train_epochs / model_width: of the fresh ResNet-18 (None: the profile's). overrides: profile
    settings of the natural model that made the data (data, width, epochs, seed; seed also seeds
    this training). Returns the history, final and best-epoch test accuracy.
    """
    if profile not in DEFAULTS:
        raise ValueError(f"profile must be one of {sorted(DEFAULTS)}, got {profile!r}")
    d = DEFAULTS[profile]
    epochs = d["train_epochs"] if train_epochs is None else train_epochs
    model_width = d["model_width"] if model_width is None else model_width
    for name, value in (("train_epochs", epochs), ("model_width", model_width)):
        profiles.positive_int(name, value)
    check_setting(lr, batch_size, decay)
    if decay == "step" and epochs < 2:
        raise ValueError(f"decay 'step' needs train_epochs >= 2, got {epochs}")
    construction = dict(construction or {})
    plan = constructed.plan(profile, **construction, **overrides)
    if dataset not in plan["names"]:
        raise ValueError(f"dataset must be one of {sorted(plan['names'])}, got {dataset!r}")

    device = device or default_device()
    data, test_data, hardware = constructed.dataset(profile, dataset, device=device, progress=progress,
                                                    **construction, **overrides)
    seed = plan["cfg"]["seed"]
    setting = {"lr": float(lr), "batch_size": batch_size, "decay": decay, "epochs": epochs}
    params = {"data": data.identity, "test": test_data.identity, "model_width": model_width, "seed": seed, **setting}

    def compute(workdir) -> dict:
        model = models.build("resnet18", num_classes=len(data.classes), width=model_width, seed=seed).to(device)
        history = train.train(model, data, test_data, epochs=epochs, lr=lr, batch_size=batch_size,
                              milestones=[epochs // 2] if decay == "step" else [], seed=seed,
                              checkpoint=workdir / "checkpoint.pt", device=device, progress=progress)
        return {"history": history}

    history = store.fetch("constructed-training", params, compute)["history"]
    chance = test_data.y.bincount().max().item() / len(test_data)
    return {"cfg": plan["cfg"], "dataset": dataset, "setting": setting, "size": len(data), "history": history,
            "final_acc": history["test_acc"][-1], "best_epoch_acc": max(history["test_acc"]), "chance": chance,
            "n_test": len(test_data),
            "hardware": hardware | {store.meta("constructed-training", params)["hardware"]}}


def stderr(acc: float, n_test: int) -> float:
    """Binomial standard error of an accuracy measured on n_test images."""
    return (acc * (1 - acc) / n_test) ** 0.5


def gap(a: dict, b: dict) -> tuple[float, float]:
    """(a - b, its standard error), in percentage points, of two runs' final test accuracies."""
    pa, pb = a["final_acc"], b["final_acc"]
    return 100 * (pa - pb), 100 * (stderr(pa, a["n_test"]) ** 2 + stderr(pb, b["n_test"]) ** 2) ** 0.5


def points_for(profile: str, datasets: list[str], grid: dict | None = None) -> list[dict]:
    """The sweep points: every dataset x the grid (lr, batch_size, decay lists; a name left out
    keeps the profile's list)."""
    grid = dict(grid or {})
    unknown = set(grid) - set(DEFAULTS[profile]["grid"])
    if unknown:
        raise ValueError(f"grid may only set {sorted(DEFAULTS[profile]['grid'])}, got {sorted(unknown)}")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid[{name!r}] must be a non-empty list, got {values!r}")
    axes = {"dataset": datasets, **DEFAULTS[profile]["grid"], **grid}
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    for point in points:
        check_setting(point["lr"], point["batch_size"], point["decay"])
    return points


def collect(profile: str, points: list[dict], progress: bool = False, **common) -> dict:
    """Every point's result read back (computing any that is missing), and per data set the
    setting that won the grid: {"points": [...], "best": {dataset: result}}. The grid is
    judged by final test accuracy (the paper reports the best over its grid)."""
    results = [run(profile, **point, **common, progress=progress) for point in points]
    best = {}
    for r in results:
        if r["dataset"] not in best or r["final_acc"] > best[r["dataset"]]["final_acc"]:
            best[r["dataset"]] = r
    return {"points": results, "best": best}


def grid_results(profile: str, datasets: list[str], *, grid: dict | None = None, workers: int | None = None,
                 notebooks: bool = True, progress: bool = True, **common) -> dict:
    """The grid (see points_for) for `datasets`, every point read back from the store.

    notebooks=True runs the missing points as a sweep of this section's notebook (one executed
    notebook per point under <store>/sweeps, `workers` points at a time: default one per GPU,
    else one per core); a failed point stops here with its log, after the others finished.
    notebooks=False computes them one after the other in this process: the path for a machine
    without the notebook stack. The catalogue is built first, once, so parallel points only
    read it. common: train_epochs, model_width, construction and profile settings. Returns
    collect()'s points and best, the sweep's records (None without notebooks), "sets" (the
    Constructed section's result), "cfg", "train" and "hardware".
    """
    own = ("construction", "train_epochs", "model_width")
    overrides = {k: v for k, v in common.items() if k not in own}
    construction = common.get("construction") or {}
    names = constructed.plan(profile, **construction, **overrides)["names"]
    if not datasets or any(d not in names for d in datasets):
        raise ValueError(f"datasets must be names of the catalogue {sorted(names)}, got {datasets!r}")
    points = points_for(profile, datasets, grid)
    sets = constructed.run(profile, progress=progress, **construction, **overrides)
    records = None
    if notebooks:
        workers = workers or len(sweep.gpus()) or os.cpu_count() or 1
        fixed = {"profile": profile, **{k: common.get(k) for k in own}, "settings": overrides}
        records = sweep.run("constructed_training", points=points, fixed=fixed, workers=workers,
                            out=store.default_root() / "sweeps", progress=progress)
        failed = [r for r in records if r["status"] == "failed"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(records)} sweep points failed; logs: "
                               + "; ".join(f"{r['log']}: {r['error']}" for r in failed))
    out = collect(profile, points, progress=progress and not notebooks, **common)
    hardware = sets["hardware"].union(*(r["hardware"] for r in out["points"]))
    return {**out, "records": records, "sets": sets, "cfg": sets["cfg"], "train": sets["train"], "hardware": hardware}
