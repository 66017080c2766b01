"""PGD throughput of nrf.attacks.pgd against torchattacks' PGD (linf) and PGDL2 (l2).

Same model (a ResNet-18 in eval mode), same batch, same eps / step / steps, same device, one
process, both untargeted without random start, so the two compute the same iterates: the
table also says how far apart their perturbations end up. nrf runs in bf16 autocast on cuda
(as everywhere in nrf), torchattacks in fp32. torchattacks is not in the book's environment;
run this from the comparison one (without it, its rows say "not installed"):

    make .venv-bench/installed && .venv-bench/bin/python bench/bench_pgd.py
"""

import argparse
import time

import common
import torch

from nrf import attacks, models
from nrf.runtime import default_device, generator

EPS = {"linf": 8 / 255, "l2": 1.0}
SIZES = {
    "full": {"width": 16, "batch": 128, "steps": 10, "repeats": 5},
    "quick": {"width": 4, "batch": 8, "steps": 2, "repeats": 1},
}


def timed(fns, device, repeats):
    """{name: (best wall-clock seconds over `repeats` calls, last output)} after one warm-up call
    each; the calls alternate between the methods, in turn first and second, so that a busy
    machine or a cold cache slows both alike."""
    out = {name: fn() for name, fn in fns.items()}
    best = dict.fromkeys(fns, float("inf"))
    for r in range(repeats):
        for name, fn in list(fns.items())[:: -1 if r % 2 else 1]:
            common.sync(device)
            t = time.perf_counter()
            out[name] = fn()
            common.sync(device)
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: (best[name], out[name]) for name in fns}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=str(default_device()))
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    args = common.parse(p, "bench_pgd", argv)
    size = SIZES["quick" if args.quick else "full"]
    device = torch.device(args.device)
    model = models.build("resnet18", width=size["width"]).to(device).eval()
    g = generator(0, device)
    x = torch.rand(size["batch"], 3, args.size, args.size, generator=g, device=device)
    y = torch.randint(0, 10, (size["batch"],), generator=g, device=device)
    torchattacks = common.optional("torchattacks")

    rows = []
    for norm, eps in EPS.items():
        step = eps / 3
        kw = {"norm": norm, "eps": eps, "steps": size["steps"], "step_size": step, "targeted": False}
        runs = {"nrf": lambda kw=kw: attacks.pgd(model, x, y, **kw)}
        if torchattacks:
            ta = (torchattacks.PGD if norm == "linf" else torchattacks.PGDL2)(
                common.NCHWGradients(model), eps=eps, alpha=step, steps=size["steps"], random_start=False
            )
            runs["torchattacks"] = lambda ta=ta: ta(x, y) - x
        results = timed(runs, device, size["repeats"])
        base = results.get("torchattacks", (None,))[0]
        for name in ("nrf", "torchattacks"):
            if name not in results:
                rows.append([name, norm, size["batch"], size["steps"], common.NOT_INSTALLED, "", "", ""])
                continue
            seconds, delta = results[name]
            gap = (results["nrf"][1] - results["torchattacks"][1]).abs().max().item() if base else ""
            rows.append(
                [
                    name,
                    norm,
                    size["batch"],
                    size["steps"],
                    seconds,
                    size["batch"] * size["steps"] / seconds,
                    base / seconds if base else "",
                    gap if name == "nrf" else "",
                ]
            )

    body = common.table(
        [
            "method",
            "norm",
            "batch",
            "steps",
            "seconds (best)",
            "img*steps/s",
            "speed / torchattacks",
            "max abs(delta_nrf - delta_ta)",
        ],
        rows,
    )
    body += (
        f"\n\nResNet-18 width {size['width']} in eval mode, {args.size} px random images, best of "
        f"{size['repeats']} after a warm-up; eps linf 8/255, l2 1.0, step eps/3, no random start. "
        "speed / torchattacks > 1: nrf faster."
    )
    common.publish("bench_pgd", "PGD: nrf against torchattacks", body, device, args.out)


if __name__ == "__main__":
    main()
