"""Training throughput on this machine, to size a profile: images/s of one SGD step for the
book's architectures, natural and PGD adversarial (3 steps), with and without channels_last.

    .venv/bin/python bench/bench_train.py            # one table; nothing else may compute meanwhile

Throughput does not depend on the images, so random 32 px batches stand in for CIFAR-10. One
epoch of full CIFAR-10 is 50,000 images: the last column is its minutes at that rate.
"""

import argparse
import time

import torch
import torch.nn.functional as F

import common
from nrf import attacks, models
from nrf.runtime import default_device, generator

# (arch, width, batch, PGD adversarial training)
ROWS = [("resnet18", 8, 256, False), ("resnet18", 16, 256, False), ("resnet18", 32, 256, False),
        ("resnet18", 16, 512, False), ("resnet18", 8, 256, True), ("resnet18", 16, 256, True),
        ("vgg16", 16, 256, False), ("vgg16", 32, 256, False)]
QUICK_DIVISOR = 64  # --quick: every row at 1/64 of its batch, one timed step


def rate(arch: str, width: int, batch: int, adv: bool, channels_last: bool, seconds: float,
         device: torch.device) -> float:
    """Images per second of training steps, measured for about `seconds` (at least one step)
    after two warm-up steps."""
    model = models.build(arch, width=width).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = generator(0, device)
    x = torch.rand(batch, 3, 32, 32, generator=g, device=device)
    y = torch.randint(0, 10, (batch,), generator=g, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        xb = x + attacks.pgd(model, x, y, norm="l2", eps=1.0, steps=3, step_size=2 / 3, targeted=False,
                             random_start=True) if adv else x
        model.train()
        loss = F.cross_entropy(model(xb), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(), step()
    common.sync(device)
    done, start = 0, time.perf_counter()
    while not done or time.perf_counter() - start < seconds:
        step()
        done += batch
        common.sync(device)
    return done / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15, help="measuring time per row and layout")
    p.add_argument("--device", default=str(default_device()))
    args = common.parse(p, "bench_train", argv)
    device, seconds = torch.device(args.device), 0 if args.quick else args.seconds
    rows = []
    for arch, width, batch, adv in ROWS:
        batch = batch // QUICK_DIVISOR if args.quick else batch
        nchw, last = (rate(arch, width, batch, adv, layout, seconds, device) for layout in (False, True))
        rows.append([arch, width, batch, "PGD-3" if adv else "natural", nchw, last, 50_000 / max(nchw, last) / 60])
    body = common.table(["arch", "width", "batch", "training", "NCHW img/s", "channels_last img/s",
                         "min / CIFAR-10 epoch"], rows)
    body += (f"\n\nOne SGD step (momentum 0.9) on random 32 px images, measured for {seconds:g} s "
             "(at least one step) per row and layout.")
    common.publish("bench_train", "Training throughput", body, device, args.out)


if __name__ == "__main__":
    main()
