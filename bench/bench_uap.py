"""Algorithm 1 (universal adversarial perturbations, CVPR 2017): nrf versus the Adversarial
Robustness Toolbox, side by side in one process, on the same model, images, norm and radius.

Both stop once the perturbation fools a share 1 - delta of X, or after max-passes passes, with
DeepFool as the inner attack (10 candidate classes, at most 10 iterations, overshoot 0.02 in
both). One table, two settings:

- smoke-5x: the smoke natural ResNet-18, 100 images, l2 xi = 5 (5 times the book's
  radius) and delta = 0.6, so that every version reaches the same target, 40% of X fooled, and
  the table compares the time to reach the same fooling rate;
- medium, the book's setting: the medium natural ResNet-18 (committed) with the Part II pages' medium
  options (the uap section's xi, X of 500 images, 5 passes, delta 0.2, batches of 128, the
  whole test split held out): the ratio to ART where the book works (needs full CIFAR-10).

Columns: passes, fooling rate reached on X and on held-out test images, wall time, and the time
relative to nrf's batched version. ART is not in the book's environment (without it, its rows
say "not installed"):

    make .venv-bench/installed && .venv-bench/bin/python bench/bench_uap.py
"""

import argparse
import random
import time

import common
import numpy as np
import torch

from nrf import algorithm1, attacks, options, uaps, zoo
from nrf.data import to_float
from nrf.runtime import default_device
from nrf.sections import uap

# name: (profile, options of the uap section changed from the profile's, radius / the book's)
SETTINGS = {"smoke-5x": ("smoke", {"delta": 0.6, "max_passes": 10, "n_eval": 1000}, 5), "medium": ("medium", {}, 1)}
# --quick: both settings on the embedded sample, X of 8 images for one pass; the smoke model
# trained for one epoch at width 4 (the test suite's tiny model)
QUICK = {
    "data": "sample",
    "width": 4,
    "epochs": 1,
    "milestones": [],
    "n_train": 8,
    "max_passes": 1,
    "uap_batch": 4,
    "n_eval": 32,
}
COLUMNS = [
    "setting",
    "implementation",
    "passes",
    "fooling on X (%)",
    "fooling held out (%)",
    "wall time (s)",
    "time / nrf batched",
]


def natural_model(cfg: dict, train_data, test_data, device):
    """(model, meta) of the profile's natural ResNet-18: the committed one where the profile has
    one (medium: the model the book's pages attack), else trained from the store (smoke)."""
    if (zoo.zoo_dir(cfg["profile"]) / "natural.pt").exists():
        return zoo.load(cfg["profile"], "natural", device)
    return zoo.trained(zoo.recipe(cfg, "natural", train_data.identity), train_data, test_data, device=device)


def compare(model, cfg: dict, train_data, test_data, norm: str, xi: float, device: torch.device, art) -> list:
    """Rows [passes, fooling on X, fooling held out, seconds] of nrf batched, nrf per-image and
    ART (None where ART is not installed) at one setting."""
    x = train_data.x[uaps.pick(train_data, cfg["n_train"], cfg["uap_seed"])]
    x_test, _ = uaps.test_images(test_data, cfg["n_eval"], device)
    rows = []
    for batched in (True, False):
        start = time.perf_counter()
        v, history = algorithm1.uap(
            model,
            x,
            xi=xi,
            norm=norm,
            delta=cfg["delta"],
            max_passes=cfg["max_passes"],
            overshoot=uaps.OVERSHOOT,
            batched=batched,
            batch_size=cfg["uap_batch"],
            seed=cfg["uap_seed"],
        )
        common.sync(device)
        seconds = time.perf_counter() - start
        rows.append([len(history), history[-1], attacks.fooling_rate(model, x_test, v), seconds])
    if art is None:
        return rows + [None]

    classifier = art.estimators.classification.PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=len(train_data.classes),
        clip_values=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )
    attack = art.attacks.evasion.UniversalPerturbation(
        classifier,
        attacker="deepfool",
        delta=cfg["delta"],
        max_iter=cfg["max_passes"],
        eps=xi,
        norm=2 if norm == "l2" else np.inf,
        verbose=False,
        attacker_params={"max_iter": 10, "epsilon": uaps.OVERSHOOT, "nb_grads": 10, "verbose": False},
    )
    x_np, clean = to_float(x).numpy(), attacks.predict(model, x).numpy()
    passes, predict = [], classifier.predict

    def counting(inputs, *a, **k):  # ART scores all of X once at the end of each pass
        passes.extend([1] if len(inputs) == len(x_np) else [])
        return predict(inputs, *a, **k)

    classifier.predict = counting
    random.seed(cfg["uap_seed"])  # ART shuffles X with Python's global generator
    start = time.perf_counter()
    attack.generate(x_np, y=clean)  # labels given, so the counter sees only the end-of-pass scoring
    common.sync(device)
    seconds = time.perf_counter() - start
    v = torch.from_numpy(attack.noise[0]).float().to(device)
    return rows + [[len(passes), attack.fooling_rate, attacks.fooling_rate(model, x_test, v), seconds]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--norm", default="l2", choices=attacks.NORMS)
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated, of: " + ", ".join(SETTINGS))
    args = common.parse(p, "bench_uap", argv)
    names = args.settings.split(",")
    if unknown := [n for n in names if n not in SETTINGS]:
        p.error(f"--settings must name settings among {list(SETTINGS)}; got {unknown}")
    device = default_device()
    art = common.optional("art")  # imports its attacks and estimators

    rows, notes = [], []
    for name in names:
        profile, changed, scale = SETTINGS[name]
        cfg = options.resolve(uap.OPTIONS, profile, {**changed, **(QUICK if args.quick else {})}, section="uap")
        xi = scale * uaps.xi(cfg)[args.norm]
        train_data, test_data = zoo.load_data(cfg["data"])
        model, meta = natural_model(cfg, train_data, test_data, device)
        found = compare(model, cfg, train_data, test_data, args.norm, xi, device, art)
        base = found[0][-1]
        for impl, result in zip(("nrf batched", "nrf per-image", "ART UniversalPerturbation"), found):
            rows.append(
                [
                    name,
                    impl,
                    *(
                        [common.NOT_INSTALLED, "", "", "", ""]
                        if result is None
                        else [result[0], 100 * result[1], 100 * result[2], result[3], result[3] / base]
                    ),
                ]
            )
        notes.append(
            f"- {name}: {profile} natural ResNet-18 (width {meta['width']}, {meta['epochs']} epochs on "
            f"{meta['data']}), attacked on {train_data.identity}: "
            f"X = {cfg['n_train']} training images, {args.norm} xi = {xi:.4g}, delta = {cfg['delta']}, "
            f"at most {cfg['max_passes']} passes, nrf batches of {cfg['uap_batch']}, held out: "
            f"{cfg['n_eval'] or 'the whole test split'}"
        )
    body = common.table(COLUMNS, rows) + "\n\n" + "\n".join(notes)
    common.publish("bench_uap", "Algorithm 1: nrf against ART", body, device, args.out)


if __name__ == "__main__":
    main()
