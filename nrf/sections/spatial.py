"""Section "Spatial invariance" (I-F4, I-F16): do perturbations still work when translated?

Standard perturbations are made for one test image each and measured on that image only;
universal perturbations (several per target, from different base sets) are measured on a
set of test images. Every perturbation is rolled by (i, j) pixels with wraparound over a grid
of shifts and its attack success rate (ASR) is measured at each shift. The paper's claim: the
universal ones keep working far from where they were made, the standard ones stop after
small shifts.
"""

import math

import torch

from .. import attacks, claims, options, records, store, universals, zoo
from ..options import Option
from ..runtime import bar, device_batch, device_of, generator

EFFECTIVE = 0.05  # a universal perturbation has an effect to retain when it beats chance by 5 points unshifted
RETAINED = 0.5  # the verdict's line: the share of the unshifted above-chance ASR kept after the smallest shift

# The paper: 256 standard perturbations, ten universal ones per target on the whole test set,
# shifts every 4 px on 224 px images (1.8% of the side: 1 px on 32 px). Smoke keeps the CPU
# time to about two minutes: one universal perturbation per target (the one the other sections
# share), 50 test images, 4 px.
OPTIONS = (
    options.MODELS
    + options.THREAT
    + options.UNIVERSAL
    + [
        Option(
            "targets",
            None,
            "the target classes of the universal perturbations (null: every class)",
            kind="classes",
            optional=True,
        ),
        Option(
            "per_target",
            {"smoke": 1, "medium": 3, "paper": 10},
            "universal perturbations per target, from seeds seed, seed + 1, ... (each its own base set)",
            kind="int",
            low=1,
        ),
        Option(
            "n_standard",
            {"smoke": 128, "medium": 256, "paper": 256},
            "standard perturbations, one test image each",
            kind="int",
            low=1,
        ),
        Option(
            "n_eval",
            {"smoke": 50, "medium": 500, "paper": 1000},
            "test images each universal perturbation is measured on",
            kind="int",
            low=1,
        ),
        Option(
            "stride",
            {"smoke": 4, "medium": 4, "paper": 1},
            "pixels between shifts on the grid (divides the image side)",
            kind="int",
            low=1,
        ),
    ]
)


def shift_grid(size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every shift (i, j) on a stride grid of a size x size image, [S, 2] (i major), and its
    wraparound distance: max(|i|, |j|) with i, j read as the shorter way round, [S]."""
    r = torch.arange(0, size, stride)
    grid = torch.cartesian_prod(r, r)
    return grid, torch.minimum(grid, size - grid).amax(1)


def centred(asr: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [S] map over shift_grid as an [n, n] image with the zero shift in the middle, and its
    axis: signed shifts in pixels (a roll by -i is the same as a roll by size - i)."""
    n = size // stride
    return torch.roll(asr.view(n, n), (n // 2, n // 2), (0, 1)), (torch.arange(n) - n // 2) * stride


def ring_curve(asr: torch.Tensor, ring: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ASR over the shifts at each wraparound distance: (distances [D], curves [..., D])."""
    distances = torch.unique(ring)
    return distances, torch.stack([asr[..., ring == d].mean(-1) for d in distances], -1)


def standard_shifts(
    model, spec: dict, test_data, *, norm: str, eps: float, n_standard: int, stride: int, seed: int
) -> dict:
    """The paper's standard perturbation (attacks.pgd) for n_standard seeded test images toward
    seeded random targets other than their label, each delta measured on its own image at every
    shift: {"index", "targets", "deltas", "asr" [S], "chance" (share of the clean images already
    predicted as their target)}."""
    params = {
        "what": "standard",
        "model": spec,
        "test": test_data.identity,
        "norm": norm,
        "eps": eps,
        "n_standard": n_standard,
        "stride": stride,
        "seed": seed,
    }

    def compute(_workdir) -> dict:
        g = generator(seed)
        index = torch.randperm(len(test_data), generator=g)[:n_standard]
        x, y = test_data.x[index], test_data.y[index]
        classes = len(test_data.classes)
        targets = (y + torch.randint(1, classes, (len(y),), generator=g)) % classes
        deltas = attacks.pgd(model, x, targets, norm=norm, eps=eps, seed=seed)
        shifts, _ = shift_grid(x.shape[-1], stride)
        rows = shifts.split(x.shape[-1] // stride)  # one row of the grid per call, for the progress bar
        batch = device_batch(device_of(model))
        asr = torch.cat(
            [
                attacks.shifted_asr(model, x, deltas, targets, s, batch_size=batch)
                for s in bar(rows, desc="standard shifts")
            ]
        )
        chance = (attacks.predict(model, x) == targets).float().mean().item()
        return {"index": index, "targets": targets, "deltas": deltas.cpu(), "asr": asr, "chance": chance}

    return store.fetch("spatial", params, compute)


def universal_shifts(
    model,
    spec: dict,
    unis: list[dict],
    test_data,
    *,
    norm: str,
    eps: float,
    n_eval: int,
    stride: int,
    seed: int,
    solver: dict,
) -> dict:
    """Every universal perturbation of `unis` (universals.per_target results, one per seed, made
    with the `solver` settings) measured on n_eval seeded test images at every shift: {"index",
    "asr" [P, T, S], "chance" [T] (share of those images predicted as the target unperturbed)}.
    One artifact per seed: the paper's 1-pixel grid takes minutes per seed on a GPU, so a stage
    stopped at its budget resumes at the seed it was measuring."""
    targets = list(unis[0]["targets"])
    index = torch.randperm(len(test_data), generator=generator(seed))[:n_eval].sort().values
    x = test_data.x[index]
    shifts, _ = shift_grid(x.shape[-1], stride)
    batch = device_batch(device_of(model))

    def measured(u: dict) -> torch.Tensor:
        params = {
            "what": "universal",
            "model": spec,
            "test": test_data.identity,
            "norm": norm,
            "eps": eps,
            "targets": targets,
            "universal_seed": u["seed"],
            "solver": solver,
            "n_eval": n_eval,
            "stride": stride,
            "seed": seed,
        }

        def compute(_workdir) -> dict:
            jobs = list(zip(u["deltas"], targets))
            return {
                "asr": torch.stack(
                    [
                        attacks.shifted_asr(model, x, d, t, shifts, batch_size=batch)
                        for d, t in bar(jobs, desc=f"universal shifts, seed {u['seed']}")
                    ]
                )
            }

        return store.fetch("spatial", params, compute)["asr"]

    asr = torch.stack([measured(u) for u in unis])
    pred = attacks.predict(model, x)
    chance = torch.tensor([(pred == t).float().mean().item() for t in targets])
    return {"index": index, "asr": asr, "chance": chance}


def run(cfg: dict) -> dict:
    """Shift standard and universal perturbations of the natural ResNet-18 and measure their ASR
    at every shift of the grid."""
    norm, eps = options.threat(cfg)
    train_data, test_data = zoo.load_data(cfg["data"])
    universals.solver(cfg, len(train_data))  # checks base_size before anything trains
    classes, size = list(train_data.classes), test_data.x.shape[-1]
    targets = options.class_indices(cfg["targets"], classes, "targets")
    for name in ("n_standard", "n_eval"):
        if cfg[name] > len(test_data):
            raise ValueError(f"option {name} must be at most the {len(test_data)} test images, got {cfg[name]}")
    stride = cfg["stride"]
    if stride > size // 2 or size % stride:
        raise ValueError(
            f"option stride must divide the image side {size} and be at most {size // 2} (so the grid "
            f"wraps evenly and has a non-zero shift), got {stride}"
        )

    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data)
    seeds = [cfg["seed"] + p for p in range(cfg["per_target"])]
    solver = universals.solver(cfg, len(train_data))
    unis = [
        {
            **universals.per_target(
                model, spec, train_data, test_data, norm=norm, eps=eps, targets=targets, seed=s, **solver
            ),
            "seed": s,
        }
        for s in seeds
    ]
    std = standard_shifts(
        model, spec, test_data, norm=norm, eps=eps, n_standard=cfg["n_standard"], stride=stride, seed=cfg["seed"]
    )
    uni = universal_shifts(
        model,
        spec,
        unis,
        test_data,
        norm=norm,
        eps=eps,
        n_eval=cfg["n_eval"],
        stride=stride,
        seed=cfg["seed"],
        solver=solver,
    )

    shifts, ring = shift_grid(size, stride)
    distances, std_curve = ring_curve(std["asr"], ring)
    _, uni_curves = ring_curve(uni["asr"].flatten(0, 1), ring)  # [P * T, D]: one per perturbation, seed major
    std_map, axis = centred(std["asr"], size, stride)
    uni_map, _ = centred(uni["asr"].mean((0, 1)), size, stride)
    return {
        "results": {
            "classes": classes,
            "targets": targets,
            "norm": norm,
            "eps": eps,
            "seeds": seeds,
            "stride": stride,
            "image_size": size,
            "n_standard": cfg["n_standard"],
            "n_eval": cfg["n_eval"],
            "clean_acc": meta["clean_acc"],
            "axis": axis,
            "distances": distances,
            "standard": {
                "curve": std_curve,
                "chance": std["chance"],
                "index": std["index"][:1],
                "targets": std["targets"][:1],
            },
            "universal": {"curves": uni_curves, "chance": uni["chance"]},  # chance per target
        },
        "tensors": {
            "shifts": shifts,
            "standard_asr": std["asr"],
            "universal_asr": uni["asr"],
            "standard_map": std_map,
            "universal_map": uni_map,
            "standard_delta": std["deltas"][0],
            "universal_deltas": torch.stack([u["deltas"] for u in unis]),
        },
        "data": records.data_note(train_data, test_data),
    }


def summary(r: dict) -> dict:
    """The curves the verdict and the page read: per kind, the mean ASR at each distance with its
    standard error, the chance level, and the retention (share of the above-chance ASR at zero
    shift left at each distance) with its standard error (delta method). Standard perturbations:
    binomial errors over their images; universal ones: the spread across perturbations."""
    std, uni = r["standard"], r["universal"]
    per = len(r["seeds"])
    out = {
        "standard": {
            "curve": std["curve"],
            "chance": std["chance"],
            "se": [claims.binomial_se(a, r["n_standard"]) for a in std["curve"]],
        }
    }
    columns = list(zip(*uni["curves"]))  # per distance: the ASR of every perturbation
    stats = [claims.mean_se(c) for c in columns]
    out["universal"] = {
        "curve": [m for m, _ in stats],
        "se": [s for _, s in stats],
        "chance": sum(uni["chance"]) / len(uni["chance"]),
        "sd": [float(torch.tensor(c, dtype=torch.float64).std(unbiased=False)) for c in columns],
    }
    out["standard"]["chance_se"] = claims.binomial_se(std["chance"], r["n_standard"])
    out["universal"]["chance_se"] = claims.mean_rate(uni["chance"], r["n_eval"])[1]
    for kind in out.values():
        base = kind["curve"][0] - kind["chance"]
        kind["lift"], kind["lift_se"] = base, claims.diff_se(kind["se"][0], kind["chance_se"])
        kind["retention"] = [(a - kind["chance"]) / base if base > 0 else math.nan for a in kind["curve"]]
        kind["retention_se"] = [
            math.sqrt(s * s + k * k * kind["se"][0] ** 2) / base if base > 0 else math.nan
            for s, k in zip(kind["se"], kind["retention"])
        ]
    # each universal perturbation's own retention at the largest distance (those with an effect to retain)
    chance = uni["chance"] * per
    out["universal"]["own_far"] = [
        (c[-1] - h) / (c[0] - h) for c, h in zip(uni["curves"], chance) if c[0] - h > EFFECTIVE
    ]
    return out


def verdicts(rec: dict) -> list[claims.Verdict]:
    """I-F4 / I-F16: after the smallest shift on the grid, universal perturbations keep at least
    RETAINED of their above-chance success and standard ones keep less, and the universal ones
    keep more than the standard ones by more than claims.K_SE s.e."""
    r = rec["results"]
    s = summary(r)
    std, uni = s["standard"], s["universal"]
    claim = "universal perturbations keep working when shifted, standard ones stop"
    criterion = claims.quoted(
        "still achieve non-trivial ASR after translations of varying magnitudes",
        f"after the smallest shift: universal keep at least {100 * RETAINED:g}% of their above-chance ASR, standard "
        f"keep less than {100 * RETAINED:g}%, and the difference exceeds {claims.K_SE} s.e.; testable when both beat "
        f"chance unshifted by {claims.K_SE} s.e.",
    )
    if not (claims.exceeds(std["lift"], std["lift_se"]) and claims.exceeds(uni["lift"], uni["lift_se"])):
        return [
            claims.Verdict(
                claim=claim,
                test="I-F4, I-F16",
                effect=None,
                spread=None,
                unit="",
                status="cannot be tested",
                criterion=criterion,
                detail=f"unshifted, standard perturbations beat chance by {100 * std['lift']:.1f} ± "
                f"{100 * std['lift_se']:.1f} points and universal ones by {100 * uni['lift']:.1f} ± "
                f"{100 * uni['lift_se']:.1f}: no effect to follow across shifts",
            )
        ]
    first = 1  # the smallest non-zero distance
    keep_u, keep_s = uni["retention"][first], std["retention"][first]
    gap, gap_se = keep_u - keep_s, claims.diff_se(uni["retention_se"][first], std["retention_se"][first])
    passed = (keep_u >= RETAINED) + (keep_s < RETAINED)
    status = claims.outcome(passed, 2)
    if status == "holds" and not claims.exceeds(gap, gap_se):
        status = "holds in part"
    return [
        claims.Verdict(
            claim=claim,
            test="I-F4, I-F16",
            effect=100 * gap,
            spread=100 * gap_se,
            unit="points of retention",
            status=status,
            criterion=criterion,
            detail=f"after {r['distances'][first]} px universal perturbations keep {100 * keep_u:.0f}% of their effect, "
            f"standard ones {100 * keep_s:.0f}%",
        )
    ]
