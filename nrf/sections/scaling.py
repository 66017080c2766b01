"""Section "Scaling" (I-F5): do universal perturbations rely on non-robust features?

The universal perturbations of the natural ResNet-18 (one per target), and their best and
worst patch (scored with nrf.patches, as the Locality section does), are multiplied by s and
measured on that model, on a second natural model (another seed) and on the robust model. If
they carried robust features, scaling them up would move the robust model too. A universal
perturbation made on the robust model itself at `factor` times the budget is the positive
control: it shows what it takes to move the robust model.
"""

import torch

from .. import attacks, claims, options, patches, records, store, universals, zoo
from ..options import Option
from ..runtime import generator

# Which perturbations each model is measured with: every kind on the natural models that the
# natural perturbations come from or transfer to, the robust model's own on robust and natural.
MEASURED = {
    "natural": ("universal", "best", "worst", "robust"),
    "natural_seed1": ("universal", "best", "worst"),
    "robust": ("universal", "best", "worst", "robust"),
}

# scales: multiples of the budget eps at which every perturbation is measured (the grid always
# gets 1, the perturbation as made, and `factor`, the robust model's own perturbation at its
# size). The robust model's perturbation is this section's only gradient computation beyond the
# shared ones: smoke solves it on a smaller base set, in smaller batches, to keep 16 steps.
OPTIONS = (
    options.MODELS
    + options.THREAT
    + options.UNIVERSAL
    + patches.OPTIONS
    + [
        Option("targets", None, "the target classes (null: every class)", kind="classes", optional=True),
        Option(
            "scales",
            {"smoke": [0.5, 1, 2, 3, 5, 8], "medium": [0.5, 1, 2, 3, 5, 8], "paper": [0.5 * k for k in range(1, 17)]},
            "multiples of eps to measure at (1 and factor are always added)",
            kind="floats",
            low=1e-12,
        ),
        Option(
            "factor",
            5.0,
            "the robust model's own perturbation is made at factor * eps (the paper: 30 = 5 x 6 on ImageNet-M10)",
            low=1,
        ),
        Option(
            "scale_eval",
            {"smoke": 50, "medium": 1000, "paper": None},
            "test images each scaled perturbation is measured on (null: all)",
            kind="int",
            low=1,
            optional=True,
        ),
        Option(
            "robust_base_size",
            {"smoke": 128, "medium": 2000, "paper": 10000},
            "training images in the base set of the robust model's perturbation",
            kind="int",
            low=1,
        ),
        Option(
            "robust_solver_epochs",
            {"smoke": 4, "medium": 10, "paper": 10},
            "solver passes for the robust model's perturbation",
            kind="int",
            low=1,
        ),
        Option(
            "robust_solver_batch",
            {"smoke": 32, "medium": 256, "paper": 256},
            "base-set images per solver step for the robust model's perturbation",
            kind="int",
            low=1,
        ),
    ]
)


def best_and_worst(deltas: torch.Tensor, scores: dict, norm: str) -> dict:
    """Each target's highest- and lowest-ASR patch among those scored by patches.score, cut (and
    for l2 rescaled to the largest patch norm) exactly as they were scored."""
    best, worst = scores["asr"].argmax(1), scores["asr"].argmin(1)
    cuts = torch.stack([patches.cut(d, scores["corners"], scores["size"], norm)[0] for d in deltas])  # [T, P, ...]
    rows = torch.arange(len(deltas))
    return {
        "best": cuts[rows, best],
        "worst": cuts[rows, worst],
        "best_corner": scores["corners"][best],
        "worst_corner": scores["corners"][worst],
        "best_asr": scores["asr"][rows, best],
        "worst_asr": scores["asr"][rows, worst],
    }


def measure(
    models: dict,
    specs: dict,
    kinds: dict,
    targets: list[int],
    test_data,
    *,
    grid: list[float],
    n_eval: int | None,
    seed: int,
    params: dict,
) -> dict:
    """ASR of s * kinds[k][t] for every s in `grid`, target t and the models of MEASURED, on
    n_eval seeded test images (None: all): {"asr": {kind: {role: [T, S]}}, "chance": {role: [T]},
    "eval_index"}. `kinds` are [T, C, H, W], already divided so that s = 1 is the budget eps."""
    params = {
        **params,
        "models": specs,
        "test": test_data.identity,
        "targets": targets,
        "grid": grid,
        "n_eval": n_eval,
        "seed": seed,
    }

    def compute(_workdir) -> dict:
        n_test = len(test_data)
        index = (
            torch.arange(n_test)
            if n_eval is None
            else torch.randperm(n_test, generator=generator(seed))[:n_eval].sort().values
        )
        x = test_data.x[index]
        s = torch.tensor(grid).view(1, -1, 1, 1, 1)
        to = torch.tensor(targets).repeat_interleave(len(grid))  # target of each scaled delta, t major
        asr, chance = {k: {} for k in kinds}, {}
        for role, model in models.items():
            ks = MEASURED[role]
            every = torch.cat([(kinds[k][:, None] * s).flatten(0, 1) for k in ks])
            hits = attacks.asr_many(model, x, every, to.repeat(len(ks)), desc=f"scaled, on {role}")
            for k, a in zip(ks, hits.view(len(ks), len(targets), len(grid))):
                asr[k][role] = a
            pred = attacks.predict(model, x)
            chance[role] = torch.tensor([(pred == t).float().mean().item() for t in targets])
        return {"asr": asr, "chance": chance, "eval_index": index}

    return store.fetch("scaling", params, compute)


def run(cfg: dict) -> dict:
    """Scale the natural and the robust model's universal perturbations (and the natural ones'
    best and worst patches) and measure them on the three models."""
    norm, eps = options.threat(cfg)
    factor = cfg["factor"]
    train_data, test_data = zoo.load_data(cfg["data"])
    classes = list(train_data.classes)
    targets = options.class_indices(cfg["targets"], classes, "targets")
    n_eval = cfg["scale_eval"]
    if n_eval is not None and n_eval > len(test_data):
        raise ValueError(f"option scale_eval must be at most the {len(test_data)} test images, got {n_eval}")
    for size in ("base_size", "robust_base_size"):
        if cfg[size] > len(train_data):
            raise ValueError(f"option {size} must be at most the {len(train_data)} training images, got {cfg[size]}")
    opts = patches.settings(cfg, train_data.x.shape[-1], len(test_data))
    grid = sorted({float(s) for s in cfg["scales"]} | {1.0, float(factor)})
    solver = universals.solver(cfg, len(train_data))
    robust_solver = {
        **solver,
        "base_size": cfg["robust_base_size"],
        "epochs": cfg["robust_solver_epochs"],
        "batch_size": cfg["robust_solver_batch"],
    }

    specs = {role: zoo.recipe(cfg, role, train_data.identity) for role in MEASURED}
    models, metas = {}, {}
    for role, spec in specs.items():
        models[role], metas[role] = zoo.trained(spec, train_data, test_data)
    attack = zoo.evaluation(cfg)
    robust_acc = zoo.robust_accuracy(models["robust"], specs["robust"], test_data, attack)
    seed = cfg["seed"]
    uni = universals.per_target(
        models["natural"],
        specs["natural"],
        train_data,
        test_data,
        norm=norm,
        eps=eps,
        targets=targets,
        seed=seed,
        **solver,
    )
    rob = universals.per_target(
        models["robust"],
        specs["robust"],
        train_data,
        test_data,
        norm=norm,
        eps=factor * eps,
        targets=targets,
        seed=seed,
        **robust_solver,
    )
    scores = patches.score(models["natural"], specs["natural"], uni, test_data, norm=norm, **opts)
    picked = best_and_worst(uni["deltas"], scores, norm)
    kinds = {
        "universal": uni["deltas"],
        "best": picked["best"],
        "worst": picked["worst"],
        "robust": rob["deltas"] / factor,
    }
    result = measure(
        models,
        specs,
        kinds,
        targets,
        test_data,
        grid=grid,
        n_eval=n_eval,
        seed=seed,
        params={
            "norm": norm,
            "eps": eps,
            "factor": factor,
            "solver": solver,
            "robust_solver": robust_solver,
            "patches": opts,
        },
    )
    return {
        "results": {
            "classes": classes,
            "targets": targets,
            "norm": norm,
            "eps": eps,
            "factor": factor,
            "grid": grid,
            "n_eval": len(result["eval_index"]),
            "n_test": len(test_data),
            "asr": result["asr"],
            "chance": result["chance"],
            "clean_acc": {role: m["clean_acc"] for role, m in metas.items()},
            "robust_acc": robust_acc,
            "attack": attack,
            "patches": {
                "n_patches": opts["n_patches"],
                "size": scores["size"],
                "n_eval": len(scores["eval_index"]),
                **{k: v for k, v in picked.items() if k not in ("best", "worst")},
            },
        },
        "tensors": {"deltas": uni["deltas"], "robust_deltas": rob["deltas"]},
        "data": records.data_note(train_data, test_data),
    }


def at(r: dict, kind: str, role: str, s: float) -> tuple[float, float]:
    """Mean over targets of the ASR of `kind` on `role` at scale s, and its standard error (the
    targets' binomial errors on n_eval images each)."""
    column = r["grid"].index(s)
    return claims.mean_rate([row[column] for row in r["asr"][kind][role]], r["n_eval"])


def chance(r: dict, role: str) -> tuple[float, float]:
    """Mean chance level of `role` over the targets, and its standard error."""
    return claims.mean_rate(r["chance"][role], r["n_eval"])


RISE, NEAR = 0.05, 0.10  # what counts as a rise, and the most a "no reaction" may move: 5 and 10 percentage points
SENTENCES = {
    "rise": "increases as we increase t",
    "robust": "the robust model does not react to any scaling of the perturbation",
    "control": (
        "a universal perturbation computed on the robust model (at a much larger epsilon) does move the robust model"
    ),
    "down": "still fools the natural model, even when scaled down",
}


def rise(r: dict, kind: str, role: str) -> tuple[float, float]:
    """ASR of `kind` on `role` at the largest scale minus at the smallest, and its standard error."""
    (a0, s0), (a1, s1) = at(r, kind, role, min(r["grid"])), at(r, kind, role, max(r["grid"]))
    return a1 - a0, claims.diff_se(s0, s1)


def verdicts(rec: dict) -> list[claims.Verdict]:
    """I-F5 (a), over the whole range of scales: the natural models' ASR rises (by more than RISE);
    the robust model's does not (its rise stays below NEAR, an equivalence bound, testable only
    when the positive control moves it); the robust model's own perturbation, made at `factor`
    eps, moves it (positive control, at s = factor) and still fools the natural model scaled down
    (every scale from 1 to below factor beats chance by RISE)."""
    r = rec["results"]
    f, lo, hi = r["factor"], min(r["grid"]), max(r["grid"])
    found = []

    rises = {role: rise(r, "universal", role) for role in ("natural", "natural_seed1")}
    tests = {
        role: claims.above(100 * d, 100 * se, 100 * RISE, what=f"the rise on {role.replace('_', ' ')}")
        for role, (d, se) in rises.items()
    }
    found.append(
        claims.Verdict(
            claim="scaling a universal perturbation up raises its ASR on natural models",
            test="I-F5a",
            effect=100 * sum(d for d, _ in rises.values()) / len(rises),
            spread=100 * claims.diff_se(*[se for _, se in rises.values()]) / len(rises),
            unit="points",
            status=claims.outcome(sum(t.passed for t in tests.values()), len(tests)),
            criterion=claims.quoted(
                SENTENCES["rise"],
                f"ASR at s = {hi:g} minus s = {lo:g}: " + "; ".join(t.criterion for t in tests.values()),
            ),
            detail="; ".join(f"{role}: {100 * d:+.1f} ± {100 * se:.1f} points" for role, (d, se) in rises.items()),
        )
    )

    (a, sa), (c, sc) = at(r, "universal", "robust", f), chance(r, "robust")
    (own, so) = at(r, "robust", "robust", f)
    own_lift, own_se = own - c, claims.diff_se(so, sc)
    gap, gap_se = own - a, claims.diff_se(so, sa)
    moved = claims.above(100 * own_lift, 100 * own_se, 100 * NEAR, what="its ASR on the robust model minus chance")
    beyond = claims.above(
        100 * gap, 100 * gap_se, 100 * RISE, what="its ASR minus the natural model's perturbations' of the same norm"
    )
    robust_rise, robust_se = rise(r, "universal", "robust")
    flat = claims.below(
        100 * robust_rise, 100 * robust_se, 100 * NEAR, what=f"the robust model's rise from s = {lo:g} to s = {hi:g}"
    )
    natural_rise = sum(d for d, _ in rises.values()) / len(rises)
    found.append(
        claims.Verdict(
            claim="the robust model does not react to scaling the natural model's perturbations",
            test="I-F5a",
            effect=100 * robust_rise,
            spread=100 * robust_se,
            unit="points of rise",
            status="holds"
            if flat.passed and moved.passed
            else "does not hold"
            if not flat.passed
            else "cannot be tested",
            criterion=claims.quoted(
                SENTENCES["robust"], flat.criterion + " (testable when the positive control moves the robust model)"
            ),
            detail=f"ASR on the robust model {100 * at(r, 'universal', 'robust', lo)[0]:.1f}% at s = {lo:g}, "
            f"{100 * at(r, 'universal', 'robust', hi)[0]:.1f}% at s = {hi:g} (chance {100 * c:.1f}%); the natural "
            f"models rise by {100 * natural_rise:.1f} points"
            + (
                ""
                if moved.passed or not flat.passed
                else "; its own perturbation does not move it either, so resisting says nothing"
            ),
        )
    )
    found.append(
        claims.Verdict(
            claim="a universal perturbation made on the robust model moves it (positive control)",
            test="I-F5a",
            effect=100 * gap,
            spread=100 * gap_se,
            unit="points over the natural model's",
            status=claims.outcome(moved.passed + beyond.passed, 2),
            criterion=claims.quoted(
                SENTENCES["control"],
                f"made at {f:g} eps, at s = {f:g}: {moved.criterion}; {beyond.criterion}",
                source="PAPER.md's claim 2",
            ),
            detail=f"ASR {100 * own:.1f}% on the robust model (chance {100 * c:.1f}%, natural model's perturbations "
            f"{100 * a:.1f}%)",
        )
    )

    down = [s for s in r["grid"] if 1 <= s < f]
    c_nat, sc_nat = chance(r, "natural")
    lifts = {
        s: (at(r, "robust", "natural", s)[0] - c_nat, claims.diff_se(at(r, "robust", "natural", s)[1], sc_nat))
        for s in down
    }
    tests = {
        s: claims.above(100 * d, 100 * se, 100 * RISE, what=f"at s = {s:g}, ASR minus chance")
        for s, (d, se) in lifts.items()
    }
    first = lifts[min(down)] if down else (None, None)
    found.append(
        claims.Verdict(
            claim="the robust model's perturbation still fools the natural model when scaled down",
            test="I-F5a",
            effect=None if first[0] is None else 100 * first[0],
            spread=None if first[1] is None else 100 * first[1],
            unit=f"points over chance (s = {min(down):g})" if down else "",
            status=claims.outcome(sum(t.passed for t in tests.values()), len(tests)) if down else "not applicable",
            criterion=claims.quoted(
                SENTENCES["down"],
                f"made at {f:g} eps and scaled down to s eps for every s from 1 to "
                f"below {f:g}, on the natural model: each ASR minus chance exceeds {100 * RISE:g} "
                f"points by more than {claims.K_SE} s.e.",
            ),
            detail="; ".join(f"s = {s:g}: {100 * (d + c_nat):.1f}%" for s, (d, _) in lifts.items())
            + f" (chance {100 * c_nat:.1f}%)"
            if down
            else f"no scale from 1 to below {f:g} in the grid",
        )
    )
    return found
