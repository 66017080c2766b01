"""Training and attack throughput on this machine, to size a profile and choose its precision:
images/s of one SGD step for the book's architectures, natural and PGD adversarial (3 steps),
NCHW fp32 against channels_last fp32 and channels_last bf16 autocast side by side; then the
attack step (input gradient) in fp32 and bf16, and how far bf16's attack agrees with fp32's.

    .venv/bin/python bench/bench_train.py            # two tables; nothing else may compute meanwhile

Throughput does not depend on the images, so random 32 px batches stand in for CIFAR-10. One
epoch of full CIFAR-10 is 50,000 images: a column gives its minutes at the fastest rate. The
agreement rows attack the shipped CIFAR-10 sample's test images with a trained model (the
committed medium natural model where the checkout has it, else one trained here for a minute).
"""

import argparse
import math
import time

import common
import torch
import torch.nn.functional as F

from nrf import attacks, data, models, train, zoo
from nrf.runtime import autocast, cpu_flags, default_device, generator, precision

# (arch, width, batch, PGD adversarial training)
ROWS = [
    ("resnet18", 8, 256, False),
    ("resnet18", 16, 256, False),
    ("resnet18", 32, 256, False),
    ("resnet18", 16, 512, False),
    ("resnet18", 8, 256, True),
    ("resnet18", 16, 256, True),
    ("vgg16", 16, 256, False),
    ("vgg16", 32, 256, False),
]
QUICK_DIVISOR = 64  # --quick: every row at 1/64 of its batch, one timed step


LAYOUTS = [("NCHW", False, "fp32"), ("channels_last", True, "fp32"), ("channels_last", True, "bf16")]
ATTACK = {"norm": "l2", "eps": 1.0, "steps": 10}  # the paper's targeted PGD (step eps/3)


def rate(
    arch: str, width: int, batch: int, adv: bool, channels_last: bool, seconds: float, device: torch.device
) -> float:
    """Images per second of training steps, in the precision set around the call."""
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
        xb = (
            x
            + attacks.pgd(model, x, y, norm="l2", eps=1.0, steps=3, step_size=2 / 3, targeted=False, random_start=True)
            if adv
            else x
        )
        model.train()
        with autocast(device):
            loss = F.cross_entropy(model(xb).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return images_per_second(step, batch, seconds, device)


def images_per_second(step, batch: int, seconds: float, device: torch.device) -> float:
    """Images per second of `step` (one batch of `batch` images), measured for about `seconds`
    (at least one step) after two warm-up steps."""
    step(), step()
    common.sync(device)
    done, start = 0, time.perf_counter()
    while not done or time.perf_counter() - start < seconds:
        step()
        done += batch
        common.sync(device)
    return done / (time.perf_counter() - start)


def attack_rate(model, x, y, seconds: float, device: torch.device) -> float:
    """Images per second of one targeted PGD step (forward and input gradient) on batch x."""
    return images_per_second(lambda: attacks.pgd(model, x, y, **{**ATTACK, "steps": 1}), len(x), seconds, device)


def trained_model(device: torch.device):
    """The committed medium natural ResNet-18 where present, else a width-8 one trained for 2
    epochs on the sample (agreement needs a model with a real decision function)."""
    try:
        return zoo.load("medium", "natural", device)[0], "medium natural ResNet-18 (committed)"
    except ValueError:
        tr, te = data.load_cifar10("sample", "train"), data.load_cifar10("sample", "test")
        model = models.build("resnet18", width=8)
        train.train(model, tr, te, epochs=2, lr=0.05, batch_size=64, schedule="onecycle", device=device)
        return model.to(device, memory_format=torch.channels_last).eval(), "ResNet-18 w8, 2 epochs on the sample"


def agreement(model, x, t, device: torch.device) -> dict:
    """bf16 against fp32 for the attack: the input gradient's cosine and sign agreement, and the
    targeted PGD's success (ASR) in each precision, on the same images and targets."""
    x = x.to(device).float() / 255
    t = t.to(device)
    grads, success = {}, {}
    for name in ("fp32", "bf16"):
        with precision(name):
            xg = x.clone().requires_grad_(True)
            with autocast(device):
                loss = F.cross_entropy(model(xg).float(), t)
            (grads[name],) = torch.autograd.grad(loss, xg)
            delta = attacks.pgd(model, x, t, **ATTACK)
        success[name] = attacks.predict(model, (x + delta).clamp(0, 1)) == t  # judged in fp32
    a, b = grads["fp32"].flatten(1), grads["bf16"].flatten(1)
    n = len(x)
    both = (success["fp32"] != success["bf16"]).float().mean().item()
    return {
        "cosine": F.cosine_similarity(a, b, dim=1).mean().item(),
        "sign": (a.sign() == b.sign()).float().mean().item(),
        "asr": {k: v.float().mean().item() for k, v in success.items()},
        "se": math.sqrt(both / n),  # paired: the s.e. of the ASR difference from discordant images
        "n": n,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10, help="measuring time per row and column")
    p.add_argument("--device", default=str(default_device()))
    args = common.parse(p, "bench_train", argv)
    device, seconds = torch.device(args.device), 0 if args.quick else args.seconds
    rows = []
    for arch, width, batch, adv in ROWS:
        batch = batch // QUICK_DIVISOR if args.quick else batch
        rates = []
        for _, channels_last, name in LAYOUTS:
            with precision(name):
                rates.append(rate(arch, width, batch, adv, channels_last, seconds, device))
        rows.append(
            [arch, width, batch, "PGD-3" if adv else "natural", *rates, rates[2] / rates[1], 50_000 / max(rates) / 60]
        )
    body = common.table(
        [
            "arch",
            "width",
            "batch",
            "training",
            *(f"{lay} {name} img/s" for lay, _, name in LAYOUTS),
            "bf16 / fp32",
            "min / CIFAR-10 epoch",
        ],
        rows,
    )
    body += (
        f"\n\nOne SGD step (momentum 0.9) on random 32 px images, measured for {seconds:g} s "
        "(at least one step) per row and column; bf16 is torch.autocast (convolutions and matrix "
        f"products in bfloat16, loss and update in fp32). CPU instruction sets: {isa()}."
    )

    model, which = trained_model(device)
    test = data.load_cifar10("sample", "test")
    n = 64 if args.quick else len(test)
    x, y = test.x[:n], test.y[:n]
    t = (y + 1 + torch.randint(0, 9, (n,), generator=generator(0))) % 10  # a target other than the label
    attack_rows = []
    for name in ("fp32", "bf16"):
        with precision(name):
            xb = x[:256].to(device).float().div(255).contiguous(memory_format=torch.channels_last)
            attack_rows.append([name, attack_rate(model, xb, t[:256].to(device), seconds, device)])
    agree = agreement(model, x, t, device)
    for row in attack_rows:
        row.append(100 * agree["asr"][row[0]])
    body += "\n\n" + common.table(["precision", "attack step img/s (batch 256)", "targeted PGD ASR %"], attack_rows)
    diff = 100 * (agree["asr"]["bf16"] - agree["asr"]["fp32"])
    body += (
        f"\n\nAttack agreement, bf16 against fp32, on {agree['n']} test images of the shipped sample "
        f"({which}), targeted l2 PGD eps 1.0, 10 steps of eps/3, a random wrong target per image: input "
        f"gradient cosine {agree['cosine']:.4f}, sign agreement {100 * agree['sign']:.1f}%, ASR difference "
        f"{diff:+.1f} points (paired s.e. {100 * agree['se']:.1f}). Success is judged in fp32 in both."
    )
    common.publish("bench_train", "Training and attack throughput, fp32 against bf16", body, device, args.out)


def isa() -> str:
    """The CPU's instruction sets that decide bf16 speed (from /proc/cpuinfo), or "n/a"."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    have = [f for f in wanted if f in cpu_flags()]
    return ", ".join(have) or "none of " + ", ".join(wanted)


if __name__ == "__main__":
    main()
