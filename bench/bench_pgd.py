"""PGD throughput of nrf.attacks.pgd against torchattacks' PGD (linf) and PGDL2 (l2).

Same model (a ResNet-18 in eval mode), same batch, same eps / step / steps, same device, one
process, both untargeted without random start, so the two compute the same iterates: the
script also prints how far apart their perturbations end up. nrf runs in bf16 autocast on
cuda (as everywhere in nrf), torchattacks in fp32. torchattacks is not in the book's
environment; run this from the comparison one:

    make .venv-bench/bin/python && .venv-bench/bin/python bench/bench_pgd.py
"""

import argparse
import time

import torch
import torchattacks

from nrf import attacks, models
from nrf.runtime import default_device, generator, hardware

EPS = {"linf": 8 / 255, "l2": 1.0}


def timed(fns, device, repeats):
    """{name: (best wall-clock seconds over `repeats` calls, last output)} after one warm-up call
    each; the calls alternate between the methods, in turn first and second, so that a busy
    machine or a cold cache slows both alike."""
    out = {name: fn() for name, fn in fns.items()}
    best = dict.fromkeys(fns, float("inf"))
    for r in range(repeats):
        for name, fn in list(fns.items())[::-1 if r % 2 else 1]:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            out[name] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: (best[name], out[name]) for name in fns}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=str(default_device()))
    p.add_argument("--width", type=int, default=16, help="ResNet-18 base width (the paper's is 64)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    args = p.parse_args()
    device = torch.device(args.device)
    model = models.build("resnet18", width=args.width).to(device).eval()
    g = generator(0, device)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g, device=device)
    y = torch.randint(0, 10, (args.batch,), generator=g, device=device)

    print(f"# {hardware(device)}; resnet18 width {args.width}, {args.size}px, best of {args.repeats}")
    print(f"{'method':<14}{'norm':<6}{'batch':>6}{'steps':>6}{'seconds':>10}{'img*steps/s':>13}{'ratio':>7}")
    gaps = []
    for norm, eps in EPS.items():
        step = eps / 3
        ta = (torchattacks.PGD if norm == "linf" else torchattacks.PGDL2)(
            model, eps=eps, alpha=step, steps=args.steps, random_start=False)
        rows = {
            "nrf": lambda: attacks.pgd(model, x, y, norm=norm, eps=eps, steps=args.steps, step_size=step,
                                       targeted=False),
            "torchattacks": lambda: ta(x, y) - x,
        }
        results = timed(rows, device, args.repeats)
        base = results["torchattacks"][0]
        for name, (seconds, _) in results.items():
            rate, ratio = args.batch * args.steps / seconds, base / seconds
            print(f"{name:<14}{norm:<6}{args.batch:>6}{args.steps:>6}{seconds:>10.3f}{rate:>13.0f}{ratio:>7.2f}")
        gaps.append(f"{norm}: {(results['nrf'][1] - results['torchattacks'][1]).abs().max().item():.2e}")
    print("# ratio: throughput relative to torchattacks (>1: nrf faster); max |delta_nrf - delta_ta|:",
          ", ".join(gaps))


if __name__ == "__main__":
    main()
