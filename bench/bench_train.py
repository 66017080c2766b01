"""Training throughput on this machine, to size a profile: images/s of one SGD step for the
book's architectures, natural and PGD adversarial (3 steps), with and without channels_last.

    .venv/bin/python bench/bench_train.py            # prints one table; nothing else may compute meanwhile

Throughput does not depend on the images, so random 32 px batches stand in for CIFAR-10. One
epoch of full CIFAR-10 is 50,000 images: the last column is its minutes at that rate.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from nrf import attacks, models
from nrf.runtime import generator, hardware, pin_threads


def rate(arch: str, width: int, batch: int, adv: bool, channels_last: bool, seconds: float) -> float:
    """Images per second of training steps, measured for about `seconds` after two warm-up steps."""
    model = models.build(arch, width=width)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = generator(0)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
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
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        done += batch
    return done / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15, help="measuring time per row")
    args = p.parse_args()
    pin_threads()
    rows = [("resnet18", 8, 256, False), ("resnet18", 16, 256, False), ("resnet18", 32, 256, False),
            ("resnet18", 16, 512, False), ("resnet18", 8, 256, True), ("resnet18", 16, 256, True),
            ("vgg16", 16, 256, False), ("vgg16", 32, 256, False)]
    print(f"# {hardware()}")
    print(f"{'arch':<10}{'width':>6}{'batch':>6}  {'training':<12}{'NCHW img/s':>11}{'ch.last img/s':>14}"
          f"{'min/epoch':>10}")
    for arch, width, batch, adv in rows:
        nchw = rate(arch, width, batch, adv, False, args.seconds)
        last = rate(arch, width, batch, adv, True, args.seconds)
        print(f"{arch:<10}{width:>6}{batch:>6}  {'PGD-3' if adv else 'natural':<12}{nchw:>11.0f}{last:>14.0f}"
              f"{50_000 / max(nchw, last) / 60:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
