"""Natural and PGD adversarial training, resumable to the bit, and (robust) accuracy.

The training set lives on the device as uint8 for the whole run; every epoch is one seeded
permutation and batched on-device augmentation, so there is no DataLoader and no per-sample
Python. All randomness of epoch e comes from generators seeded by (seed, e), so a run
resumed from the checkpoint of epoch e replays exactly what an uninterrupted run does.
"""

import hashlib
import os
import time

import torch
import torch.nn.functional as F

from nrf import attacks
from nrf.data import Data, crop_flip, resized_crop_flip, to_float
from nrf.models import save_atomic
from nrf.runtime import autocast, bar, default_device, evaluating, generator

AUGMENTS = ("crop_flip", "resized_crop_flip", None)
SCHEDULES = ("step", "onecycle")
WARMUP = 0.2  # onecycle: share of the steps over which the learning rate climbs to lr
CHECKPOINT_EVERY = 300.0  # seconds between checkpoints of a training run
MAX_LOSS = 1e3  # a mean cross-entropy above this (or nan) means training diverged
NORMS = ("l2", "linf")
ADV_KEYS = {"norm", "eps", "steps", "step_size"}


def derive_seed(*parts) -> int:
    """A 63-bit seed from a tuple of ints: independent streams per (seed, epoch, batch), no state."""
    return int.from_bytes(hashlib.sha256(repr(tuple(int(p) for p in parts)).encode()).digest()[:8], "little") >> 1


def _check(epochs, lr, batch_size, milestones, gamma, weight_decay, momentum, adv, augment, schedule):
    if not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive int; got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    if any(not isinstance(m, int) or not 0 < m < epochs for m in milestones):
        raise ValueError(f"milestones must be ints inside (0, epochs={epochs}); got {list(milestones)!r}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0; got {gamma!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1); got {momentum!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}; got {schedule!r}")
    if schedule == "onecycle" and milestones:
        raise ValueError(f"milestones belong to the step schedule; got {list(milestones)!r} with onecycle")
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {list(AUGMENTS)}; got {augment!r}")
    if adv is not None:
        if not isinstance(adv, dict) or set(adv) != ADV_KEYS:
            raise ValueError(f"adv must be None or a dict with exactly the keys {sorted(ADV_KEYS)}; got {adv!r}")
        if adv["norm"] not in NORMS:
            raise ValueError(f"adv['norm'] must be one of {NORMS}; got {adv['norm']!r}")
        if not isinstance(adv["steps"], int) or adv["steps"] <= 0:
            raise ValueError(f"adv['steps'] must be a positive int; got {adv['steps']!r}")
        for key in ("eps", "step_size"):
            if not adv[key] > 0:
                raise ValueError(f"adv[{key!r}] must be > 0; got {adv[key]!r}")


def _augment(x, augment, g):
    """uint8 (or float: constructed data sets) batch -> float [0, 1] batch, augmented on its
    device (crops keep the image size)."""
    if augment == "crop_flip":
        x = crop_flip(x, generator=g)  # the gather is cheaper on uint8
    elif augment == "resized_crop_flip":
        return resized_crop_flip(x, size=x.shape[-1], generator=g)
    return to_float(x) if x.dtype == torch.uint8 else x.float()


def learning_rate(
    schedule: str, lr: float, step: int, total: int, milestones=(), gamma: float = 0.1, steps_per_epoch: int = 1
) -> float:
    """The learning rate of training step `step` of `total`. step: lr times gamma per milestone
    epoch passed. onecycle: a linear climb to lr over the first WARMUP of the steps, then a
    linear fall to zero; it reaches in a few epochs what a step schedule needs many for."""
    if schedule == "step":
        return lr * gamma ** sum(m <= step // steps_per_epoch for m in milestones)
    warm = max(1, round(WARMUP * total))
    return lr * (step + 1) / warm if step < warm else lr * (total - step) / (total - warm)


def train(
    model,
    train_data: Data,
    test_data: Data,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    milestones=(),
    gamma: float = 0.1,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    adv: dict | None = None,
    augment: str | None = "crop_flip",
    schedule: str = "step",
    seed: int = 0,
    checkpoint=None,
    checkpoint_every: float = CHECKPOINT_EVERY,
    device=None,
) -> dict:
    """Train `model` in place with SGD and cross-entropy; returns the per-epoch history.

    The learning rate follows `schedule` (see learning_rate). With `adv`, every batch is replaced
    by untargeted PGD examples (random start) made on the augmented batch with the model in
    eval mode: the attack then sees the function that is evaluated (running BN statistics,
    per-image and independent of batch mates), and only the training forward pass updates the
    BN statistics. `seed` drives data order, augmentation and the attack's random starts (the
    initial weights come from `models.build(..., seed=)`). With `checkpoint` (a path), the
    state after an epoch is written there once `checkpoint_every` seconds have passed since the
    last write (a large model written every epoch costs more than it saves), and a later call
    with the same arguments resumes from it, ending with the same weights as an uninterrupted
    run. The model and batches are channels_last (faster on both CPU and GPU). On a GPU cuDNN
    benchmarks its kernels for the fixed shapes of training, and is put back as it was
    afterwards. The model ends in eval mode.
    history: per-epoch lists train_loss and train_acc (on the batches trained on, adversarial
    ones with `adv`), test_acc (clean), lr and seconds.
    """
    milestones = sorted(milestones)
    _check(epochs, lr, batch_size, milestones, gamma, weight_decay, momentum, adv, augment, schedule)
    device = torch.device(device) if device is not None else default_device()
    config = {
        "model": getattr(model, "config", None),
        "train": train_data.identity,
        "test": test_data.identity,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "milestones": milestones,
        "gamma": gamma,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "adv": adv,
        "augment": augment,
        "schedule": schedule,
        "seed": seed,
    }
    model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = {"train_loss": [], "train_acc": [], "test_acc": [], "lr": [], "seconds": []}
    start = 0
    state = _checkpoint(checkpoint, device)
    if state is not None:
        if state["config"] != config:
            diff = sorted(k for k in config if state["config"].get(k) != config[k])
            raise ValueError(
                f"checkpoint {checkpoint} was made with other arguments ({', '.join(diff)}); delete it to start afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start = state["history"], state["epoch"]

    x, y = train_data.x.to(device), train_data.y.to(device)
    x_test, y_test = test_data.x.to(device), test_data.y.to(device)
    n = len(y)
    steps = -(-n // batch_size)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = benchmark or device.type == "cuda"
    saved = time.monotonic()
    try:
        batches = bar(
            total=epochs * steps,
            initial=start * steps,
            unit="batch",
            desc="adversarial training" if adv else "training",
        )
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            g = generator(derive_seed(seed, epoch), device)
            order = torch.randperm(n, generator=g, device=device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            model.train()
            for i in range(steps):
                idx = order[i * batch_size : (i + 1) * batch_size]
                xb = _augment(x[idx], augment, g).contiguous(memory_format=torch.channels_last)
                yb = y[idx]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(
                        schedule, lr, epoch * steps + i, epochs * steps, milestones, gamma, steps
                    )
                if adv is not None:  # attacks.perturb runs the model in eval mode, then restores train mode
                    xb = xb + attacks.pgd(
                        model,
                        xb,
                        yb,
                        norm=adv["norm"],
                        eps=adv["eps"],
                        steps=adv["steps"],
                        step_size=adv["step_size"],
                        targeted=False,
                        random_start=True,
                        seed=derive_seed(seed, epoch, i),
                    )
                with autocast(device):
                    logits = model(xb)
                    loss = F.cross_entropy(logits.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
                batches.update()
            history["train_loss"].append(loss := loss_sum.item() / n)
            if not loss < MAX_LOSS:  # nan, inf or diverged: store nothing
                raise ValueError(
                    f"training diverged in epoch {epoch + 1} (mean loss {loss:.3g}): lower the "
                    f"learning rate (lr={lr:g}){' or the attack eps' if adv else ''}"
                )
            history["train_acc"].append(correct.item() / n)
            history["test_acc"].append(accuracy(model, x_test, y_test))
            history["lr"].append(optimizer.param_groups[0]["lr"])
            history["seconds"].append(time.perf_counter() - t0)
            batches.set_postfix(
                epoch=epoch + 1,
                loss=f"{history['train_loss'][-1]:.3f}",
                acc=f"{history['train_acc'][-1]:.3f}",
                test=f"{history['test_acc'][-1]:.3f}",
            )
            if checkpoint is not None and time.monotonic() - saved >= checkpoint_every:
                saved = time.monotonic()
                save_atomic(
                    {
                        "config": config,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": history,
                        "epoch": epoch + 1,
                    },
                    checkpoint,
                )
    finally:
        torch.backends.cudnn.benchmark = benchmark
    batches.close()
    model.eval()
    return history


def _checkpoint(path, device) -> dict | None:
    """The saved state of an interrupted run, or None. An unreadable (truncated) checkpoint is
    said so and removed: the training then starts afresh instead of failing on every rerun."""
    if path is None or not os.path.exists(path):
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        print(f"nrf.train: checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:80]}); training starts afresh")
        os.remove(path)
        return None


def _correct(model, x, y, batch_size: int, attack=None, desc: str | None = None) -> float:
    """Share of x (uint8 or float [0, 1], any device) classified as y, in eval mode on the
    model's device, each batch first replaced by attack(batch, labels) when one is given;
    with a progress bar labelled `desc` if given."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    with evaluating(model) as device:
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in bar(range(0, len(y), batch_size), desc=desc, disable=desc is None):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            xb = to_float(xb) if xb.dtype == torch.uint8 else xb.float()
            if attack is not None:
                xb = attack(xb, yb)
            with torch.no_grad(), autocast(device):
                correct += (model(xb).argmax(1) == yb).sum()
    return correct.item() / len(y)


def accuracy(model, x, y, batch_size: int = 500) -> float:
    """Clean accuracy of `model` on (x, y)."""
    return _correct(model, x, y, batch_size)


def robust_accuracy(
    model, x, y, *, norm: str, eps: float, steps: int, step_size: float, batch_size: int = 500
) -> float:
    """Accuracy under untargeted PGD at `eps` (no random start, so it repeats exactly)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")

    def attack(xb, yb):
        return xb + attacks.pgd(
            model, xb, yb, norm=norm, eps=eps, steps=steps, step_size=step_size, targeted=False, random_start=False
        )

    return _correct(model, x, y, batch_size, attack, desc="robust accuracy")
