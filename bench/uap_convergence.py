"""Does Algorithm 1 converge on CIFAR-10? Its fooling rate on X pass by pass and on held-out
images, per-image (the 2017 paper's loop) against batched, with and without the authors' rule
of adding a DeepFool step only where DeepFool crossed the boundary, at several radii.

    .venv/bin/python bench/uap_convergence.py            # a table; needs the committed medium model

It measures fooling rates, not time, so it may run beside other work.

The radii are the book's l2 xi and multiples of the model's median DeepFool norm on X (the
typical minimal perturbation: what decides whether one v can fool most images). Before issue 25
the book's solver added every step (`crossed_only=False`).
"""

import argparse

import common
import torch

from nrf import algorithm1, attacks, uaps, zoo
from nrf.data import to_float
from nrf.runtime import default_device

LOOPS = [("per-image", False), ("batched 128", True)]  # (name, batched)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="images in X")
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--n-eval", type=int, default=2000, help="held-out test images")
    p.add_argument(
        "--multiples",
        type=float,
        nargs="+",
        default=[1.0, 4.0, 16.0, 32.0],
        help="radii as multiples of the median DeepFool norm on X (besides the book's xi)",
    )
    args = common.parse(p, "uap_convergence", argv)
    device = default_device()
    n, passes, n_eval = (16, 1, 64) if args.quick else (args.n, args.passes, args.n_eval)
    model, meta = zoo.load("medium", "natural", device)
    train, test = zoo.load_data("cifar10" if not args.quick else "sample")
    x = train.x[uaps.pick(train, n, 0)]
    x_test, _ = uaps.test_images(test, n_eval, device)

    r = algorithm1.deepfool(model, to_float(x.to(device)), norm="l2", max_iter=10)
    clean = attacks.predict(model, x)
    crossed = attacks.predict(model, (to_float(x) + r.cpu()).clamp(0, 1)) != clean
    median = r.flatten(1).norm(dim=1)[crossed.to(r.device)].median().item()
    radii = [("book's xi", uaps.XI["l2"])] + [(f"{m:g} x median DeepFool", m * median) for m in args.multiples]

    rows = []
    for (label, xi), crossed_only in [(r, True) for r in radii] + [(radii[0], False)]:
        for name, batched in LOOPS:
            v, history = algorithm1.uap(
                model,
                x,
                xi=xi,
                norm="l2",
                delta=0.0,
                max_passes=passes,
                batched=batched,
                batch_size=128,
                crossed_only=crossed_only,
                seed=0,
            )
            rows.append(
                [
                    label,
                    f"{xi:.3f}",
                    name,
                    "crossed only" if crossed_only else "every step",
                    " -> ".join(f"{100 * h:.1f}" for h in history),
                    v.norm().item() / xi,
                    100 * attacks.fooling_rate(model, x_test, v.to(device)),
                ]
            )
    normals = r.flatten(1)[crossed.to(r.device)]
    normals = normals / normals.norm(dim=1, keepdim=True)
    noise = torch.randn(normals.shape, generator=torch.Generator().manual_seed(0)).to(normals.device)
    noise = noise / noise.norm(dim=1, keepdim=True)
    off = ~torch.eye(len(normals), dtype=torch.bool, device=normals.device)
    cos = (normals @ normals.T)[off].abs().mean().item(), (noise @ noise.T)[off].abs().mean().item()
    body = common.table(
        [
            "radius",
            "l2 xi",
            "loop",
            "steps added",
            "fooling on X per pass (%)",
            "norm of v / xi",
            "fooling held out (%)",
        ],
        rows,
    )
    body += (
        f"\n\nModel: the committed medium natural ResNet-18 (clean accuracy {100 * meta['clean_acc']:.1f}%). "
        f"X: {n} training images, {passes} passes, delta 0 (every pass runs); held out: {n_eval} test images. "
        f"DeepFool (10 iterations, overshoot 0.02) from the clean images of X crosses the boundary on "
        f"{100 * crossed.float().mean():.1f}% of them, median l2 norm {median:.3f} (the book's xi is "
        f"{uaps.XI['l2'] / median:.1f} times that). Mean |cosine| between the DeepFool steps of two images of X: "
        f"{cos[0]:.3f} (between two random directions: {cos[1]:.3f})."
    )
    common.publish("uap_convergence", "Algorithm 1: convergence on CIFAR-10", body, device, args.out)


if __name__ == "__main__":
    main()
