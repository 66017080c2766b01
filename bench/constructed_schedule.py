"""How big and how long must D_adv be for a fresh ResNet-18 to learn it? The short search on D_adv
that picks the Section 5 training schedule once (issue 24): test accuracy after a one-cycle
schedule of E epochs on N balanced D_adv examples, for every (N, E) asked.

    NRF_THREADS=1 .venv/bin/python bench/constructed_schedule.py --variants adv adv-half --sizes 10000 25000 --epochs 15 30

D_adv is the profile's catalogue variant "adv", or "adv-half" (at half its budget), built by the
natural model or loaded from the store (run with the thread count that built it: the store keys
on it), cut alone to balanced (class, target) cells and subsampled to N, so its labels stay
uniform and independent of the classes. Each (N, E) trains as the book's pages do (grid.train's setting: SGD lr 0.1,
batch 128, one-cycle) and is kept in the store, so a rerun prints the table without training.
It measures accuracy, not time, so it may run beside other work.
"""

import argparse

import common
import torch

from nrf import constructed, models, options, store, train, zoo
from nrf.data import Data
from nrf.runtime import default_device, precision
from nrf.sections import constructed_training

VARIANTS = ("adv", "adv-half")


def subsample(plan: torch.Tensor, n: int) -> torch.Tensor:
    """The balanced cut `plan` ([C, C] kept per (class, target)) scaled down to about n examples,
    every cell by the same factor, so it stays balanced."""
    total = int(plan.sum())
    scaled = plan * n // max(total, 1)
    if n > total or not scaled.any():
        raise ValueError(
            f"--sizes: each between {-(-total // int(plan.max()))} and the {total} balanced D_adv examples, got {n}"
        )
    return scaled


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="medium", choices=options.PROFILES)
    p.add_argument("--variants", nargs="+", default=["adv"], choices=VARIANTS, help="D_adv at eps, or at eps / 2")
    p.add_argument("--sizes", type=int, nargs="+", default=[10000, 25000], help="D_adv examples N")
    p.add_argument("--epochs", type=int, nargs="+", default=[15, 30], help="one-cycle epochs E")
    p.add_argument("--seed", type=int, default=0)
    args = common.parse(p, "constructed_schedule", argv)
    quick = {"epochs": 1, "width": 4, "model_width": 4} if args.quick else {}
    if args.quick:  # tiny models, every code path
        args.profile, args.sizes, args.epochs = "smoke", [100, 200], [1, 2]
    cfg = options.resolve(constructed_training.OPTIONS, args.profile, quick, section="constructed_training")
    with precision(options.precision(args.profile)):
        cat = constructed.Catalogue(cfg)
        cat.model, cat.meta = zoo.trained(cat.spec, cat.train, cat.test)
        rows, notes = [], []
        for variant in args.variants:
            raw = cat._raw(variant)
            plan = constructed.cut([constructed.cell_table(cat.source.y, raw["t"], raw["fooled"], len(cat.classes))])
            eps = cat.names[variant]["eps"]
            notes.append(
                f"{variant} (l2 eps {eps:g}): {int(raw['fooled'].sum())} sent to their target, {int(plan.sum())} in its balanced cut"
            )
            for n in args.sizes:
                keep = constructed.select(cat.source.y, raw["t"], raw["fooled"], subsample(plan, n), args.seed)
                data = Data(x=raw["x"][keep], y=raw["t"][keep], classes=cat.source.classes, identity="")
                for epochs in args.epochs:
                    params = {
                        "adv": store.key("constructed-raw", cat._raw_params(variant)),
                        "size": len(keep),
                        "epochs": epochs,
                        "lr": cfg["train_lr"],
                        "batch_size": cfg["train_batch_size"],
                        "seed": args.seed,
                        "test": cat.test.identity,
                    }
                    h = store.fetch(
                        "schedule-search", params, lambda w, d=data, e=epochs: fit(cfg, cat, d, e, args.seed, w)
                    )["history"]
                    quarters = [h["test_acc"][max(0, round(q * epochs) - 1)] for q in (0.25, 0.5, 0.75)]
                    rows.append(
                        [
                            variant,
                            eps,
                            len(keep),
                            epochs,
                            *(100 * a for a in quarters),
                            100 * h["train_acc"][-1],
                            100 * h["test_acc"][-1],
                            100 * max(h["test_acc"]),
                            sum(h["seconds"]),
                        ]
                    )
    columns = ["D_adv", "l2 eps", "examples", "epochs", "test % at 1/4", "at 1/2", "at 3/4"]
    columns += ["final train %", "final test %", "best-epoch test %", "seconds"]
    body = common.table(columns, rows)
    body += (
        f"\n\nProfile {args.profile}: D_adv made by the natural ResNet-18 (clean accuracy "
        f"{100 * cat.meta['clean_acc']:.1f}%) on {len(cat.source)} training images, up to {cfg['draws']} targets per "
        f"image; {'; '.join(notes)}. Fresh ResNet-18 of width {cfg['model_width']}, SGD lr {cfg['train_lr']:g} (one-cycle), batch "
        f"{cfg['train_batch_size']}, crop and flip, weight decay 5e-4, seed {args.seed}, {options.precision(args.profile)}; test "
        f"accuracy on the {len(cat.test)} clean test images (chance {100 * cat.chance:.0f}%)."
    )
    common.publish(
        "constructed_schedule", "D_adv: test accuracy against size and epochs", body, default_device(), args.out
    )


def fit(cfg: dict, cat, data: Data, epochs: int, seed: int, workdir) -> dict:
    """A fresh ResNet-18 trained on `data` for `epochs` (resumable from workdir): its history."""
    device = default_device()
    model = models.build("resnet18", num_classes=len(cat.classes), width=cfg["model_width"], seed=seed).to(device)
    history = train.train(
        model,
        data,
        cat.test,
        epochs=epochs,
        lr=cfg["train_lr"],
        batch_size=cfg["train_batch_size"],
        schedule="onecycle",
        seed=seed,
        checkpoint=workdir / "checkpoint.pt",
        device=device,
    )
    return {"history": history}


if __name__ == "__main__":
    main()
