"""Section "Universal adversarial perturbations" (Part II, CVPR 2017): Algorithm 1 and its
main experiments on CIFAR-10 (II-A1, II-T1, II-T2, II-F3, II-F4), at the book's xi and at the
radius a sweep of Algorithm 1's radius picks by a fixed rule (`uaps.sweep`, `uaps.RULE`).

Every perturbation is untargeted, computed with Algorithm 1 (`uaps.universal`) on a set X of
training images much smaller than the training set and scored on held-out test images by its
fooling rate P(C(x + v) != C(x)).
"""

import dataclasses
import time

import torch

from .. import algorithm1, attacks, claims, options, records, store, uaps, universals, zoo
from ..data import Data
from ..options import Option
from ..runtime import bar, device_batch, device_of, generator

OPTIONS = (
    options.MODELS
    + uaps.OPTIONS
    + options.UNIVERSAL
    + [
        Option(
            "archs",
            ["natural", "vgg16", "vgg11"],
            "models to attack, distinct roles (the first also for II-A1 and II-F3)",
            kind="strs",
            choices=zoo.ROLES,
        ),
        Option(
            "norms",
            ["l2", "linf"],
            "norms of the perturbations, distinct (the first also for II-A1 and II-F3)",
            kind="strs",
            choices=attacks.NORMS,
        ),
        Option(
            "n_eval", None, "held-out test images scored (null: the whole test split)", kind="int", low=1, optional=True
        ),
        Option(
            "sizes",
            {"smoke": [25, 50, 100, 200], "medium": [100, 250, 500, 1000], "paper": [100, 250, 500, 1000, 2000, 4000]},
            "distinct sizes of X for II-F3",
            kind="ints",
            low=1,
        ),
        Option(
            "compare_n",
            {"smoke": 50, "medium": 200, "paper": 500},
            "images in X for the per-image versus batched comparison (II-A1)",
            kind="int",
            low=1,
        ),
    ]
)


def run(cfg: dict) -> dict:
    """II-A1, II-T1, II-T2, II-F3, II-F4: one perturbation per architecture and norm, one per
    size of X, their fooling rates on every model, and the labels they send images to."""
    for name in ("archs", "norms", "sizes"):
        if len(set(cfg[name])) != len(cfg[name]):
            raise ValueError(f"option {name} must not repeat a value, got {cfg[name]!r}")
    train_data, test_data = zoo.load_data(cfg["data"])
    for name in ("n_train", "compare_n"):
        if cfg[name] > len(train_data):
            raise ValueError(f"option {name} must be at most the {len(train_data)} training images, got {cfg[name]}")
    if max(cfg["sizes"]) > len(train_data):
        raise ValueError(f"option sizes must be at most the {len(train_data)} training images, got {cfg['sizes']}")
    if cfg["n_eval"] is not None and cfg["n_eval"] > len(test_data):
        raise ValueError(f"option n_eval must be at most the {len(test_data)} test images, got {cfg['n_eval']}")

    uaps.check_sweep(cfg, len(train_data), len(test_data))
    universals.solver(cfg, len(train_data))  # checks base_size before anything trains

    archs, norms = cfg["archs"], cfg["norms"]
    nets = {}
    for role in archs:
        spec = zoo.recipe(cfg, role, train_data.identity)
        nets[role] = (*zoo.trained(spec, train_data, test_data), spec)
    xi, solver = uaps.xi(cfg), uaps.solver(cfg)
    first, size_norm = archs[0], norms[0]

    # Fooling rate against radius, per model and norm; the radius the claims are decided at, per norm.
    curves = {
        role: {norm: uaps.sweep(nets[role][0], nets[role][2], train_data, test_data, cfg, norm) for norm in norms}
        for role in archs
    }
    chosen = {norm: uaps.picked(curves[first][norm]) for norm in norms}
    at_xi = experiments(cfg, nets, train_data, test_data, xi, norms)
    kept = [norm for norm in norms if chosen[norm] is not None]
    at_picked = experiments(cfg, nets, train_data, test_data, chosen, kept, sizes=size_norm in kept)
    table, transfer, dominant, by_size = (at_xi[k] for k in ("fooling", "transfer", "dominant", "sizes"))
    found = at_xi["found"]
    model, _, spec = nets[first]
    comparison = compare(
        model,
        spec,
        train_data,
        test_data,
        n=cfg["compare_n"],
        norm=size_norm,
        xi=xi[size_norm],
        n_eval=cfg["n_eval"],
        **solver,
    )
    pixels = train_data.x[0].numel()
    results = {
        "classes": list(train_data.classes),
        "archs": archs,
        "norms": norms,
        "names": {r: uaps.ROLE_NAMES[r] for r in archs},
        "xi": xi,
        "pixels": pixels,
        "imagenet": uaps.imagenet_equivalent(pixels),
        "n_train": cfg["n_train"],
        "n_train_total": len(train_data),
        "n_eval": len(uaps.eval_index(test_data, cfg["n_eval"])),
        "max_passes": cfg["max_passes"],
        "delta": cfg["delta"],
        "models": {role: {"clean_acc": meta["clean_acc"]} for role, (_, meta, _) in nets.items()},
        "fooling": table,
        "transfer": transfer,
        "dominant": dominant,
        "sizes": by_size,
        "sweep": sweep_results(cfg, curves, part_one(cfg, nets[first], train_data, test_data, norms), test_data),
        "picked": {
            "xi": chosen,
            "norms": kept,
            **{k: at_picked[k] for k in ("fooling", "transfer", "dominant", "sizes")},
        },
        "compare": {
            "n": cfg["compare_n"],
            "norm": size_norm,
            "role": first,
            **{kind: {k: c[k] for k in ("history", "seconds", "test_fooling")} for kind, c in comparison.items()},
        },
    }
    v = torch.stack([torch.stack([found[f"{role}/{norm}"][0]["v"] for norm in norms]) for role in archs])
    return {
        "results": results,
        "tensors": {"perturbations": v.float()},  # [archs, norms, C, H, W]
        "data": records.data_note(train_data, test_data),
    }


def experiments(cfg: dict, nets: dict, train_data: Data, test_data: Data, xi: dict, norms: list, sizes=True) -> dict:
    """II-T1, II-T2, II-F3 and II-F4 at the radii xi {norm: radius} of the given norms: one
    perturbation per architecture and norm, one per size of X (on the first model and norm, where
    `sizes`), their fooling rates on every model and the labels they send images to.
    {"found", "fooling", "transfer", "dominant", "sizes" (None without sizes)}."""
    archs, solver, first = cfg["archs"], uaps.solver(cfg), cfg["archs"][0]
    size_norm, size_list = cfg["norms"][0], sorted(cfg["sizes"]) if sizes else []
    found = {}  # name -> (result, content hash of v)
    for role in archs:
        model, _, spec = nets[role]
        for norm in norms:
            found[f"{role}/{norm}"] = uaps.universal(
                model, spec, train_data, n=cfg["n_train"], norm=norm, xi=xi[norm], **solver
            )
    model, _, spec = nets[first]
    for n in size_list:
        found[f"{first}/{size_norm}/n={n}"] = uaps.universal(
            model, spec, train_data, n=n, norm=size_norm, xi=xi[size_norm], **solver
        )
    gen = generator(uaps.CHANCE_SEED)
    chance = {}
    for norm in attacks.NORMS:  # one draw per norm, always both, so a draw does not depend on `norms`
        v = uaps.random_direction(norm, 1.0, (1, *train_data.x.shape[1:]), gen)[0]
        if norm in norms:
            v = v * xi[norm]
            chance[f"random/{norm}"] = (v, store.digest(v))
    pert = {name: (r["v"], digest) for name, (r, digest) in found.items()} | chance

    # Labels of every model on every perturbation (the sizes only on the first model).
    preds = {
        role: predictions(
            nets[role][0],
            nets[role][2],
            test_data,
            cfg["n_eval"],
            {k: v for k, v in pert.items() if "n=" not in k or role == first},
        )
        for role in archs
    }

    def fooling(role, name):
        return (preds[role][name] != preds[role]["clean"]).float().mean().item()

    y = test_data.y[uaps.eval_index(test_data, cfg["n_eval"])]
    classes = len(train_data.classes)
    table, dominant = {}, {}
    for role in archs:
        table[role], dominant[role] = {}, {}
        for norm in norms:
            r, _ = found[f"{role}/{norm}"]
            clean, after = preds[role]["clean"], preds[role][f"{role}/{norm}"]
            fooled = after != clean
            counts = torch.zeros(classes, classes, dtype=torch.long)
            counts.index_put_(
                (y[fooled], after[fooled]), torch.ones(int(fooled.sum()), dtype=torch.long), accumulate=True
            )
            dominant[role][norm] = counts  # [true class, label after the perturbation], fooled images only
            table[role][norm] = {
                "train": r["history"][-1],
                "test": fooling(role, f"{role}/{norm}"),
                "chance": fooling(role, f"random/{norm}"),
                "passes": len(r["history"]),
                "history": r["history"],
                "seconds": r["seconds"],
            }
    transfer = {norm: [[fooling(tgt, f"{src}/{norm}") for tgt in archs] for src in archs] for norm in norms}
    by_size = None
    if size_list:
        by_size = {
            "n": size_list,
            "norm": size_norm,
            "role": first,
            "test": [fooling(first, f"{first}/{size_norm}/n={n}") for n in size_list],
            "train": [found[f"{first}/{size_norm}/n={n}"][0]["history"][-1] for n in size_list],
            "chance": fooling(first, f"random/{size_norm}"),
        }
    return {"found": found, "fooling": table, "transfer": transfer, "dominant": dominant, "sizes": by_size}


def part_one(cfg: dict, net: tuple, train_data: Data, test_data: Data, norms: list) -> dict:
    """Part I's targeted universal perturbations of the first model at Part I's radius (the same
    artifacts as the gallery's), scored as Part II scores its own: the untargeted fooling rate on
    the sweep's held-out images of the target's perturbation that fools most.
    {norm: {"eps", "target", "fooling"}}."""
    model, _, spec = net
    out = {}
    for norm in norms:
        eps = options.DEFAULT_EPS[norm]
        uni = universals.per_target(
            model,
            spec,
            train_data,
            test_data,
            norm=norm,
            eps=eps,
            targets=range(len(train_data.classes)),
            seed=cfg["seed"],
            **universals.solver(cfg, len(train_data)),
        )
        rates = store.fetch(
            "uap-part-one",
            {
                "model": spec,
                "test": test_data.identity,
                "sweep_eval": cfg["sweep_eval"],
                "deltas": store.digest(uni["deltas"]),
            },
            lambda _w, deltas=uni["deltas"]: {"fooling": _untargeted(model, test_data, cfg["sweep_eval"], deltas)},
        )["fooling"]
        best = max(range(len(rates)), key=lambda i: rates[i])
        out[norm] = {"eps": eps, "target": uni["targets"][best], "fooling": rates[best]}
    return out


def _untargeted(model, test_data: Data, n: int, deltas: torch.Tensor) -> list:
    """Fooling rate P(C(x + d) != C(x)) of each of `deltas` on the first n of the evaluation draw."""
    x, _ = uaps.test_images(test_data, n, device_of(model))
    clean = attacks.predict(model, x, device_batch(x.device))
    return uaps.fooling(model, x, clean, deltas.to(x.device)).tolist()


def sweep_results(cfg: dict, curves: dict, part1: dict, test_data: Data) -> dict:
    """The record's "sweep": every model's curve per norm (without its perturbations), the rule,
    Part I's comparison and the yardsticks a reader needs (mean l2 norm of the held-out images)."""
    x, _ = uaps.test_images(test_data, cfg["sweep_eval"], "cpu")
    return {
        "rule": uaps.RULE,
        "half": uaps.HALF,
        "n": cfg["sweep_n"],
        "passes": cfg["sweep_passes"],
        "n_eval": cfg["sweep_eval"],
        "deepfool_n": cfg["deepfool_n"],
        "image_l2": x.flatten(1).norm(dim=1).mean().item(),
        "curves": {
            role: {norm: {k: v for k, v in c.items() if k != "v"} for norm, c in by.items()}
            for role, by in curves.items()
        },
        "part1": part1,
    }


def predictions(model, spec: dict, test_data: Data, n_eval: int | None, perturbations: dict) -> dict:
    """C(clip(x + v)) on the evaluation images for every named perturbation (name -> (v [C,H,W],
    content hash)) plus "clean", from the store."""
    names = sorted(perturbations)
    params = {
        "model": spec,
        "test": test_data.identity,
        "n_eval": n_eval,
        "perturbations": {name: perturbations[name][1] for name in names},
    }

    def compute(_workdir):
        x, _ = uaps.test_images(test_data, n_eval, device_of(model))
        out = {"clean": attacks.predict(model, x, device_batch(x.device)).cpu()}
        for name in bar(names, desc="evaluate"):
            out[name] = uaps.perturbed_labels(model, x, [perturbations[name][0]])[0].cpu()
        return out

    return store.fetch("uap-predictions", params, compute)


def compare(
    model,
    spec: dict,
    train_data: Data,
    test_data: Data,
    *,
    n: int,
    norm: str,
    xi: float,
    n_eval,
    max_passes: int,
    delta: float,
    batch_size: int,
    seed: int,
) -> dict:
    """II-A1: Algorithm 1 as a per-image loop and batched, back to back on the same model, X and
    xi, timed here (so both run on the same hardware): {"faithful": ..., "batched": ...}."""
    params = {
        "model": spec,
        "n": n,
        "norm": norm,
        "xi": xi,
        "max_passes": max_passes,
        "delta": delta,
        "batch_size": batch_size,
        "overshoot": uaps.OVERSHOOT,
        "seed": seed,
        "test": test_data.identity,
        "n_eval": n_eval,
    }

    def compute(_workdir):
        device = device_of(model)
        x = train_data.x[uaps.pick(train_data, n, seed)]
        x_test, _ = uaps.test_images(test_data, n_eval, device)
        out = {}
        for batched in (False, True):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            v, history = algorithm1.uap(
                model,
                x,
                xi=xi,
                norm=norm,
                delta=delta,
                max_passes=max_passes,
                overshoot=uaps.OVERSHOOT,
                batched=batched,
                batch_size=batch_size,
                seed=seed,
                desc="Algorithm 1, batched" if batched else "Algorithm 1, per image",
            )
            seconds = time.perf_counter() - start  # uap's history reads the fooling rate: the device is synced
            out["batched" if batched else "faithful"] = {
                "v": v.cpu(),
                "history": list(history),
                "seconds": seconds,
                "test_fooling": attacks.fooling_rate(model, x_test, v.to(device), device_batch(device)),
            }
        return out

    return store.fetch("uap-compare", params, compute)


# ---- Verdicts -------------------------------------------------------------------------------------

A1_TOLERANCE = 0.05  # the batched version may differ from the per-image loop by this much (5 points)
T1_LARGE = 0.5  # "a large share": at least half of the held-out images
T2_SHARE = 0.5  # a transferred perturbation keeps at least half of its source's own lift over random noise
T2_SENTENCE = "a fooling ratio above ... for all other tested architectures"


AT_PICKED = " (at the picked radius)"  # the claims again at uaps.RULE's radius, named apart


def verdicts(rec: dict) -> list[claims.Verdict]:
    """II-A1 (batched ~ per-image loop), II-T1 (large held-out fooling rates), II-T2 (transfer),
    II-F3 (more images in X fool more), II-F4 (a few dominant labels): at the book's xi, then
    II-T1 to II-F4 again at the radius uaps.RULE picks from the sweep."""
    r = rec["results"]
    return [_a1(r), _t1(r), _t2(r), _f3(r), _f4(r), *_at_picked(r)]


def _at_picked(r: dict) -> list[claims.Verdict]:
    """II-T1, II-T2, II-F3, II-F4 on the record's "picked" experiments, each claim named with
    AT_PICKED and its detail with the radii; "cannot be tested" where no swept radius qualifies."""
    p = r["picked"]
    checks = (_t1, _t2, _f3, _f4)
    if not p["norms"]:  # the claims' wording from the book's xi, nothing decided
        return [
            dataclasses.replace(
                v,
                claim=v.claim + AT_PICKED,
                effect=None,
                spread=None,
                status="cannot be tested",
                detail=f"cannot be tested at these radii: no radius of the sweep meets the rule ({uaps.RULE})",
            )
            for v in (check(r) for check in checks)
        ]
    view = {**r, **p}
    radii = ", ".join(f"{norm} xi {uaps.radius_text(norm, p['xi'][norm])}" for norm in p["norms"])
    return [
        dataclasses.replace(v, claim=v.claim + AT_PICKED, detail=f"at {radii}: {v.detail}")
        for v in (check(view) for check in checks)
    ]


def _se(p: float, r: dict) -> float:
    return claims.binomial_se(p, r["n_eval"])


def _a1(r: dict) -> claims.Verdict:
    c = r["compare"]
    faithful, batched = c["faithful"]["test_fooling"], c["batched"]["test_fooling"]
    gap, se = batched - faithful, claims.diff_se(_se(faithful, r), _se(batched, r))
    speed = c["faithful"]["seconds"] / max(c["batched"]["seconds"], 1e-9)
    chance = r["sizes"]["chance"]
    common = dict(
        claim="batched Algorithm 1 fools as often as the per-image loop",
        test="II-A1",
        kind="sanity check",
        effect=100 * gap,
        spread=100 * se,
        unit="points",
        criterion=claims.within(
            100 * gap, 100 * se, 100 * A1_TOLERANCE, what="batched minus loop held-out fooling rate"
        ).criterion
        + ", with either fooling more than random noise",
    )
    if not claims.exceeds(
        max(faithful, batched) - chance, claims.diff_se(_se(max(faithful, batched), r), _se(chance, r))
    ):
        return claims.Verdict(
            **common,
            status="cannot be tested",
            detail=f"neither version fools more than random noise ({100 * chance:.1f}%)",
        )
    ok = claims.within(100 * gap, 100 * se, 100 * A1_TOLERANCE).passed
    return claims.Verdict(
        **common,
        status="holds" if ok else "does not hold",
        detail=f"loop {100 * faithful:.1f}%, batched {100 * batched:.1f}% on {r['n_eval']:,} "
        f"images; the batched version ran {speed:.1f} times as fast",
    )


def _t1(r: dict) -> claims.Verdict:
    rows = [(role, norm, r["fooling"][role][norm]) for role in r["archs"] for norm in r["norms"]]
    passed = [
        t["test"] >= T1_LARGE
        and claims.exceeds(t["test"] - t["chance"], claims.diff_se(_se(t["test"], r), _se(t["chance"], r)))
        for _, _, t in rows
    ]
    role, norm, worst = min(rows, key=lambda row: row[2]["test"])
    return claims.Verdict(
        claim="one perturbation from a small X fools most held-out images",
        test="II-T1",
        effect=100 * worst["test"],
        spread=100 * _se(worst["test"], r),
        unit="% (lowest)",
        status=claims.outcome(sum(passed), len(passed)),
        criterion=claims.quoted(
            "fool more than ... of the validation set",
            f"every perturbation fools at least "
            f"{100 * T1_LARGE:.0f}% of the held-out images (a CIFAR-10 model at its budget, not "
            f"ILSVRC's), and more than random noise of its norm by over {claims.K_SE} s.e.",
        ),
        detail=f"{sum(passed)} of {len(passed)} perturbations pass (X: {r['n_train']:,} of {r['n_train_total']:,} "
        f"training images); lowest: {r['names'][role]}, {norm}",
    )


def _t2(r: dict) -> claims.Verdict:
    """Transfer judged relative to the source's own fooling rate: a perturbation that lifts its
    source's fooling rate only a few points over random noise cannot lift another model's more."""
    archs = r["archs"]
    test = (
        f"for every source whose own held-out fooling rate beats its random noise by {claims.K_SE} s.e.: the "
        f"fooling rate on every other architecture minus that model's random noise exceeds {T2_SHARE:g} x the "
        f"source's own lift over noise by more than {claims.K_SE} s.e."
    )
    common = dict(
        claim="perturbations transfer between architectures",
        test="II-T2",
        unit="points beyond the kept share (lowest)",
        criterion=claims.quoted(T2_SENTENCE, test),
    )
    if len(archs) < 2:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="not applicable",
            detail="one architecture: nothing to transfer to",
        )
    cells, silent = [], []
    for norm in r["norms"]:
        for i, src in enumerate(archs):
            own = r["fooling"][src][norm]
            lift, lift_se = own["test"] - own["chance"], claims.diff_se(_se(own["test"], r), _se(own["chance"], r))
            if not claims.exceeds(lift, lift_se):
                silent.append(f"{r['names'][src]} ({norm})")
                continue
            for j, tgt in enumerate(archs):
                if i != j:
                    p, chance = r["transfer"][norm][i][j], r["fooling"][tgt][norm]["chance"]
                    kept = p - chance - T2_SHARE * lift
                    se = claims.diff_se(_se(p, r), _se(chance, r), T2_SHARE * lift_se)
                    cells.append((kept, se, src, tgt, norm, p - chance, lift))
    if not cells:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail=f"no source fools more than its random noise: {', '.join(silent)}",
        )
    passed = sum(claims.exceeds(kept, se) for kept, se, *_ in cells)
    kept, se, src, tgt, norm, moved, lift = min(cells, key=lambda c: c[0])
    return claims.Verdict(
        **common,
        effect=100 * kept,
        spread=100 * se,
        status=claims.outcome(passed, len(cells)),
        detail=f"{passed} of {len(cells)} transfers pass; weakest: {r['names'][src]} -> "
        f"{r['names'][tgt]}, {norm}: {100 * moved:.1f} points over noise against the "
        f"source's own {100 * lift:.1f}"
        + (f"; not judged (no lift on their own model): {', '.join(silent)}" if silent else ""),
    )


def _f3(r: dict) -> claims.Verdict:
    s = r["sizes"]
    common = dict(
        claim="the fooling rate grows with the size of X",
        test="II-F3",
        unit="points",
        criterion=f"the held-out fooling rate at the largest X above that at the smallest by over {claims.K_SE} s.e.",
    )
    if s is None:
        return claims.Verdict(
            **common, effect=None, spread=None, status="cannot be tested", detail="no radius for the sizes' norm"
        )
    if len(s["n"]) < 2:
        return claims.Verdict(**common, effect=None, spread=None, status="not applicable", detail="one size of X")
    small, large = s["test"][0], s["test"][-1]
    rise, se = large - small, claims.diff_se(_se(small, r), _se(large, r))
    return claims.Verdict(
        **common,
        effect=100 * rise,
        spread=100 * se,
        status="holds" if claims.exceeds(rise, se) else "does not hold",
        detail=f"{100 * small:.1f}% with {s['n'][0]:,} images, {100 * large:.1f}% with "
        f"{s['n'][-1]:,}; random noise {100 * s['chance']:.1f}%",
    )


def _f4(r: dict) -> claims.Verdict:
    k = len(r["classes"])
    uniform = 1 / k
    rows = []
    for role in r["archs"]:
        for norm in r["norms"]:
            d = uaps.dominant_labels(r["dominant"][role][norm])
            n = sum(d["received"])
            if n < k:  # fewer fooled images than classes: no graph to speak of
                continue
            top = max(d["received"]) / n
            se = claims.binomial_se(top, n)
            few = len(set(d["edges"].values())) <= k // 2
            rows.append((top - uniform, se, few and claims.exceeds(top - uniform, se)))
    common = dict(
        claim="a few dominant labels absorb most fooled images",
        test="II-F4",
        unit="points (lowest)",
        criterion=claims.quoted(
            'the "class i mostly goes to j" graph is a union of disjoint components, each pointing mostly '
            "to one dominant label",
            f"every graph has at most {k // 2} distinct targets, and its top label "
            f"takes more than the uniform {100 * uniform:.0f}% of fooled images by over {claims.K_SE} s.e.",
        ),
    )
    if not rows:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail=f"no perturbation fools {k} held-out images",
        )
    excess, se, _ = min(rows, key=lambda row: row[0])
    passed = sum(ok for *_, ok in rows)
    return claims.Verdict(
        **common,
        effect=100 * excess,
        spread=100 * se,
        status=claims.outcome(passed, len(rows)),
        detail=f"{passed} of {len(rows)} perturbations pass (effect: top label's share above uniform)",
    )
