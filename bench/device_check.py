"""The one prepared check for a lent GPU: agreement with the CPU, a benchmark table, then records.

Run on a machine with a CUDA GPU and torch (no notebook stack needed), from the checkout, with
the CIFAR-10 archive beside it (../shared/data or NRF_CIFAR10):

    python bench/device_check.py OUT --budget 480           # at most 8 minutes in all

1. agreement: a small ResNet-18's predictions and PGD success on the device (bf16 autocast)
   against the CPU (fp32), within the stated bf16 tolerance;
2. one benchmark table measured in this run: the bf16 matmul peak, ResNet-18 training images/s
   and its share of that peak (model FLOPs counted by torch's FlopCounterMode), the images/s of
   1, 2 and 4 such trainings at once on the device (sweep points per GPU), PGD
   images x steps/s for nrf, a plain fp32 reference loop and torchattacks (its row says "not
   installed" where it is not);
3. the records of the profile's sections, in the book's order, until the budget is spent
   (`nrf reproduce PROFILE --budget`: the stage running at the deadline is stopped), each
   written under OUT/results/PROFILE/, with the stage table (seconds, peak host and GPU memory)
   in OUT/results/PROFILE/reproduce.json, rewritten after every stage.

Everything it writes is small (records, JSON, Markdown). `--dry-run` runs the same code on the
CPU at tiny sizes (the test suite does this), so the script is known to work before a GPU is lent.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import common
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nrf import attacks, contents, models, reproduce, runtime
from nrf.runtime import autocast, default_device, generator, hardware

AGREE_ACC = 0.02  # bf16 vs fp32: share of images whose predicted class may differ
AGREE_ASR = 0.05  # and difference of PGD success rates
SIZES = {  # full: what the GPU is measured at; dry: seconds on a CPU
    "full": {"width": 64, "batch": 512, "steps": 20, "matmul": 8192, "pgd_batch": 1024, "pgd_steps": 10},
    "dry": {"width": 4, "batch": 32, "steps": 2, "matmul": 256, "pgd_batch": 16, "pgd_steps": 2},
}
TORCHATTACKS = "torchattacks PGDL2 (fp32)"
TINY_MODELS = {
    "width": 4,
    "epochs": 1,
    "robust_epochs": 1,
    "milestones": [],
    "adv_steps": 1,
    "eval_steps": 2,
    "roles": ["natural"],
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int = 3) -> float:
    """Best wall-clock seconds of fn() over `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def agreement(device) -> dict:
    """Predictions and targeted PGD success of one small ResNet-18, trained for one epoch on half
    the sample on the CPU, evaluated on the device (bf16 autocast) and on the CPU (fp32)."""
    from nrf.data import Data, load_cifar10
    from nrf.train import train

    full = load_cifar10("sample", "train")
    data = Data(full.x[::2], full.y[::2], full.classes, f"{full.identity}-half")  # every class, half the images
    test = load_cifar10("sample", "test")
    cpu = models.build("resnet18", width=8, seed=0)
    train(cpu, data, test, epochs=1, lr=0.05, batch_size=128, device="cpu")
    other = models.build("resnet18", width=8, seed=0)
    other.load_state_dict(cpu.state_dict())
    other = other.to(device).eval()
    x, target = test.x[:256], torch.full((256,), 3)
    pred = {"cpu": attacks.predict(cpu, x), "device": attacks.predict(other, x.to(device)).cpu()}
    delta = {
        "cpu": attacks.pgd(cpu, x, target, norm="l2", eps=1.0, steps=5),
        "device": attacks.pgd(other, x.to(device), target.to(device), norm="l2", eps=1.0, steps=5).cpu(),
    }
    asr = {k: attacks.asr(cpu, x, d, target) for k, d in delta.items()}  # both scored by the CPU model
    disagree = (pred["cpu"] != pred["device"]).float().mean().item()
    ok = disagree <= AGREE_ACC and abs(asr["cpu"] - asr["device"]) <= AGREE_ASR
    return {
        "prediction_disagreement": disagree,
        "pgd_asr_cpu": asr["cpu"],
        "pgd_asr_device": asr["device"],
        "tolerance": {"prediction_disagreement": AGREE_ACC, "asr_difference": AGREE_ASR},
        "agrees": ok,
    }


def matmul_peak(device, n: int) -> float:
    """Measured bf16 (CPU: fp32) matmul FLOP/s."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, device)


def training_step(device, width: int, batch: int):
    """One SGD step of a ResNet-18 on a fixed random batch (bf16 autocast, channels_last on the
    GPU), as a function to time."""
    model = models.build("resnet18", width=width).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = generator(0, device)
    x = torch.rand(batch, 3, 32, 32, generator=g, device=device)
    y = torch.randint(0, 10, (batch,), generator=g, device=device)

    def step():
        with autocast(device):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def training(device, width: int, batch: int, steps: int, peak: float) -> dict:
    """ResNet-18 training images/s and its share of the matmul peak, with the FLOPs of one step
    counted."""
    step = training_step(device, width, batch)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    seconds = timed(lambda: [step() for _ in range(steps)], device, repeats=1) / steps
    return {
        "width": width,
        "batch": batch,
        "images_per_s": batch / seconds,
        "flops_per_image": flops / batch,
        "share_of_peak": flops / seconds / peak,
    }


def _train_at_once(device: str, width: int, batch: int, steps: int, start, rates) -> None:
    """One of several trainings at once (a child process): warm up, wait for the others, time."""
    device = torch.device(device)
    step = training_step(device, width, batch)
    step()
    start.wait()  # every process is warm: their timed steps overlap
    rates.put(batch * steps / timed(lambda: [step() for _ in range(steps)], device, repeats=1))


def at_once(device, width: int, batch: int, steps: int, counts: list[int]) -> dict:
    """Training images/s of all processes together when `count` trainings share the device, for
    each count: how many sweep points (`nrf sweep --workers`) one GPU runs before they only slow
    each other down (small CIFAR models leave most of a large GPU idle)."""
    ctx = torch.multiprocessing.get_context("spawn")
    out = {}
    for count in counts:
        start, rates = ctx.Barrier(count), ctx.Queue()
        children = [
            ctx.Process(target=_train_at_once, args=(str(device), width, batch, steps, start, rates))
            for _ in range(count)
        ]
        for child in children:
            child.start()
        out[str(count)] = sum(rates.get() for _ in children)  # str: the report's JSON keys
        for child in children:
            child.join()
    return out


def pgd(device, width: int, batch: int, steps: int) -> dict:
    """images x steps / s of nrf's PGD, a plain fp32 loop and torchattacks' PGDL2 (None where it
    is not installed)."""
    model = models.build("resnet18", width=width).to(device).eval()
    g = generator(0, device)
    x = torch.rand(batch, 3, 32, 32, generator=g, device=device)
    y = torch.randint(0, 10, (batch,), generator=g, device=device)
    eps, step = 1.0, 1.0 / 3

    def plain():
        delta = torch.zeros_like(x, requires_grad=True)
        for _ in range(steps):
            loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta += step * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                delta *= (eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1).view(-1, 1, 1, 1)
                delta.copy_((x + delta).clamp(0, 1) - x)
        return delta

    runs = {
        "nrf (bf16 autocast on GPU)": lambda: attacks.pgd(
            model, x, y, norm="l2", eps=eps, steps=steps, step_size=step, targeted=False
        ),
        "plain fp32 loop": plain,
    }
    rates = {name: batch * steps / timed(fn, device) for name, fn in runs.items()}
    if torchattacks := common.optional("torchattacks"):
        ta = torchattacks.PGDL2(common.NCHWGradients(model), eps=eps, alpha=step, steps=steps, random_start=False)
        rates[TORCHATTACKS] = batch * steps / timed(lambda: ta(x, y), device)
    else:
        rates[TORCHATTACKS] = None  # a row all the same, saying so
    return rates


def stages(profile: str, deadline: float, names: list[str], params: dict) -> list[dict]:
    """`nrf reproduce PROFILE --stages NAMES` until the deadline (each stage in its own process,
    the one running at the deadline stopped): the records land under NRF_RESULTS/PROFILE/ with
    the stage table (seconds, peak host and GPU memory), rewritten after every stage."""
    budget = deadline - time.monotonic()
    if budget <= 0:
        return [{"stage": name, "status": "not started (budget spent)"} for name in names]
    with runtime.quiet():  # the stage table says how far it got
        rows = reproduce.run(profile, sections=names, params=params, budget=budget)
    done = {r["stage"] for r in rows}
    return rows + [{"stage": name, "status": "not started (budget spent)"} for name in names if name not in done]


def table(report: dict) -> str:
    """The report as Markdown, for the README and the closing note."""
    b = report["benchmark"]
    lines = [
        f"# Device check: {report['hardware']}",
        "",
        f"Agreement with the CPU: {'yes' if report['agreement']['agrees'] else 'NO'} "
        f"({json.dumps(report['agreement'])})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| matmul peak (TFLOP/s) | {b['matmul_flops'] / 1e12:.1f} |",
        f"| ResNet-18 w{b['training']['width']} training (images/s) | {b['training']['images_per_s']:.0f} |",
        f"| its share of the matmul peak | {100 * b['training']['share_of_peak']:.1f}% |",
    ]
    one = b["at_once"]["1"]
    lines += [
        f"| {n} trainings at once on the device (images/s, all together) | {rate:.0f} ({rate / one:.2f}x one) |"
        for n, rate in b["at_once"].items()
        if n != "1"
    ]
    lines += [
        f"| PGD, {name} (images x steps/s) | {common.NOT_INSTALLED if rate is None else f'{rate:.0f}'} |"
        for name, rate in b["pgd"].items()
    ]
    lines += [
        "",
        "| stage | status | seconds | peak host memory (MiB) | peak GPU memory (MiB) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['stage']} | {r['status']} | {r.get('seconds') or ''} | {r.get('peak_memory_mib') or ''} | "
        f"{r.get('peak_gpu_mib') or ''} |"
        for r in report["stages"]
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder for the records and the report (only small files)")
    p.add_argument("--budget", type=float, default=480, help="seconds for everything, checks included")
    p.add_argument("--profile", default="paper")
    p.add_argument("--sections", default=",".join(contents.PAGES), help="stages, in order (comma-separated)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, any device: checks the script itself")
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.budget
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    import os

    os.environ["NRF_RESULTS"] = str(out / "results")  # records.publish writes here
    device = default_device()
    if device.type != "cuda" and not args.dry_run:
        sys.exit("device_check: no CUDA GPU here (NRF_DEVICE or torch.cuda); use --dry-run to check the script")
    size = SIZES["dry" if args.dry_run else "full"]
    peak = matmul_peak(device, size["matmul"])
    report = {
        "hardware": hardware(device),
        "agreement": agreement(device),
        "benchmark": {
            "matmul_flops": peak,
            "training": training(device, size["width"], size["batch"], size["steps"], peak),
            "at_once": at_once(device, size["width"], size["batch"], size["steps"], [1, 2, 4]),
            "pgd": pgd(device, size["width"], size["pgd_batch"], size["pgd_steps"]),
        },
    }
    write(out, {**report, "stages": []})  # a command killed during the stages still returns the checks
    print(table({**report, "stages": []}), flush=True)
    params = TINY_MODELS if args.dry_run else {}
    report["stages"] = stages(args.profile, deadline, args.sections.split(","), params)
    write(out, report)
    print(table(report))


def write(out: Path, report: dict) -> None:
    (out / "device_check.json").write_text(json.dumps(report, indent=1))
    (out / "device_check.md").write_text(table(report))


if __name__ == "__main__":
    main()
