"""Algorithm 1 (universal adversarial perturbations, CVPR 2017): nrf versus the Adversarial
Robustness Toolbox, side by side in one process, on the same model, images, norm and radius.

Both stop once the perturbation fools a share 1 - delta of X, or after max-passes passes, with
DeepFool as the inner attack (10 candidate classes, at most 10 iterations, overshoot 0.02 in
both). Prints one table: passes, fooling rate reached on X and on held-out test images, wall
time, and the time relative to nrf's batched version. The defaults (l2 xi = 5, 5 times the
book's radius, and delta = 0.6) make every version reach the same target, 40% of X fooled, on
the smoke model, so the table compares the time to reach the same fooling rate; at the book's
radius (--xi 1) fooling rates stay near 20% and every version runs max-passes passes. ART is
not in the book's environment:

    make .venv-bench/bin/python
    .venv-bench/bin/python bench/bench_uap.py            # smoke model, 100 images, l2 xi = 5, CPU
"""

import argparse
import random
import time

import numpy as np
import torch
from art.attacks.evasion import UniversalPerturbation
from art.estimators.classification import PyTorchClassifier

from nrf import attacks, options, uaps, zoo
from nrf.data import to_float


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="smoke", help="profile whose natural ResNet-18 is attacked (from the store)")
    p.add_argument("--n", type=int, default=100, help="images in X")
    p.add_argument("--n-eval", type=int, default=1000, help="held-out test images scored")
    p.add_argument("--norm", default="l2", choices=("l2", "linf"))
    p.add_argument("--xi", type=float, default=None, help="radius; default: 5 times the book's (l2 5.0, linf 50/255)")
    p.add_argument("--delta", type=float, default=0.6, help="stop at fooling rate 1 - delta on X")
    p.add_argument("--max-passes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="nrf: images of X per DeepFool batch")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    xi = 5 * uaps.XI[args.norm] if args.xi is None else args.xi
    device = torch.device("cpu")

    cfg = options.resolve(options.MODELS, args.profile)
    train_data, test_data = zoo.load_data(cfg["data"])
    model, _ = zoo.trained(zoo.recipe(cfg, "natural", train_data.identity), train_data, test_data, device=device)
    x = train_data.x[uaps.pick(train_data, args.n, args.seed)]
    x_test = to_float(test_data.x[uaps.pick(test_data, args.n_eval, 0)])
    print(f"{args.profile} natural ResNet-18 (width {cfg['width']}), X = {args.n} training images, {args.n_eval} held-out, "
          f"{args.norm} xi = {xi:.4g}, delta = {args.delta}, at most {args.max_passes} passes, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")

    rows = []
    for name, batched in (("nrf batched", True), ("nrf per-image", False)):
        start = time.perf_counter()
        v, history = attacks.uap(model, x, xi=xi, norm=args.norm, delta=args.delta, max_passes=args.max_passes,
                                 overshoot=uaps.OVERSHOOT, batched=batched, batch_size=args.batch_size, seed=args.seed)
        rows.append((name, len(history), history[-1], attacks.fooling_rate(model, x_test, v),
                     time.perf_counter() - start))

    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                   nb_classes=len(train_data.classes), clip_values=(0.0, 1.0), device_type="cpu")
    art = UniversalPerturbation(classifier, attacker="deepfool", delta=args.delta, max_iter=args.max_passes, eps=xi,
                                norm=2 if args.norm == "l2" else np.inf, verbose=False,
                                attacker_params={"max_iter": 10, "epsilon": uaps.OVERSHOOT, "nb_grads": 10,
                                                 "verbose": False})
    x_np, clean = to_float(x).numpy(), attacks.predict(model, x).numpy()
    passes, predict = [], classifier.predict

    def counting(inputs, *a, **k):  # ART scores all of X once at the end of each pass
        passes.extend([1] if len(inputs) == len(x_np) else [])
        return predict(inputs, *a, **k)

    classifier.predict = counting
    random.seed(args.seed)  # ART shuffles X with Python's global generator
    start = time.perf_counter()
    art.generate(x_np, y=clean)  # labels given, so the counter sees only the end-of-pass scoring
    seconds = time.perf_counter() - start
    v = torch.from_numpy(art.noise[0]).float()
    rows.append(("ART UniversalPerturbation", len(passes), art.fooling_rate, attacks.fooling_rate(model, x_test, v),
                 seconds))

    base = rows[0][-1]
    print(f"\n| {'implementation':<26} | passes | fooling on X | fooling held out | wall time (s) | time / nrf batched |")
    print(f"|{'-' * 28}|--------|--------------|------------------|---------------|--------------------|")
    for name, passes, on_x, held, secs in rows:
        print(f"| {name:<26} | {passes!s:>6} | {100 * on_x:>11.1f}% | {100 * held:>15.1f}% | {secs:>13.1f} | "
              f"{secs / base:>17.1f}x |")


if __name__ == "__main__":
    main()
