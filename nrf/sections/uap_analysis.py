"""Section "Why universal perturbations exist" (Part II, CVPR 2017): II-F5 random versus
universal, II-T6 the fine-tuning defence, II-F7 the normal vectors of the decision boundary.

All three look at the natural ResNet-18 and its Algorithm 1 perturbation (`uaps.universal`,
shared with the uap section through the store: same model, X, xi and solver settings give the
same artifact), scored by the fooling rate P(C(x + v) != C(x)) on held-out test images.
II-F5, II-T6 and II-F7's random vectors are measured at the book's xi and again at the radius
the uap section's sweep picks (`uaps.sweep`, `uaps.RULE`; the same store artifacts).
"""

import copy
import dataclasses

import torch
import torch.nn.functional as F

from .. import algorithm1, attacks, claims, options, records, store, uaps, zoo
from ..data import crop_flip, to_float
from ..models import save_atomic
from ..options import Option
from ..runtime import autocast, bar, default_device, device_batch, generator
from ..train import derive_seed

# F5: radii are `scales` times xi; `draws` random perturbations per radius; `recompute` also
# solves Algorithm 1 afresh at every radius. T6: `rounds` of `ft_epochs` epochs of fine-tuning
# at `ft_lr` on `ft_size` training images, each perturbed with probability 1/2 by one of `pool`
# perturbations. F7: DeepFool normals at `n_normals` training points; random vectors from the
# span of the top `dims` singular vectors. Smoke scores 500 test images, rescales only,
# fine-tunes on 1,000 images for one epoch per round and collects 128 normals.
OPTIONS = (
    options.MODELS
    + uaps.OPTIONS
    + [
        Option(
            "norm", "l2", "norm of II-F5 and II-T6 (II-F7 is l2 by construction)", kind="str", choices=attacks.NORMS
        ),
        Option(
            "n_eval",
            {"smoke": 500, "medium": 2000, "paper": None},
            "held-out test images scored (null: the whole test split)",
            kind="int",
            low=1,
            optional=True,
        ),
        Option(
            "scales",
            {
                "smoke": [0.5, 1.0, 2.0, 4.0],
                "medium": [0.5, 1.0, 2.0, 3.0, 4.0],
                "paper": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0],
            },
            "II-F5 radii as multiples of xi (1 is always added)",
            kind="floats",
            low=1e-12,
        ),
        Option(
            "draws",
            {"smoke": 4, "medium": 5, "paper": 10},
            "random perturbations per radius (II-F5) and per subspace (II-F7)",
            kind="int",
            low=1,
        ),
        Option(
            "recompute",
            {"smoke": False, "medium": False, "paper": True},
            "II-F5: also solve Algorithm 1 afresh at every radius (not only rescale the perturbation at xi)",
            kind="bool",
        ),
        Option("rounds", {"smoke": 1, "medium": 3, "paper": 5}, "II-T6 fine-tuning rounds", kind="int", low=1),
        Option(
            "ft_epochs",
            {"smoke": 1, "medium": 5, "paper": 5},
            "epochs per fine-tuning round (5: the 2017 paper)",
            kind="int",
            low=1,
        ),
        Option("ft_lr", 0.01, "fine-tuning learning rate (SGD, momentum 0.9)", low=1e-12),
        Option(
            "ft_size",
            {"smoke": 1000, "medium": 10000, "paper": None},
            "training images fine-tuned on per round (null: all)",
            kind="int",
            low=1,
            optional=True,
        ),
        Option(
            "pool",
            {"smoke": 1, "medium": 2, "paper": 10},
            "universal perturbations per round, one drawn per perturbed image (the 2017 paper: 10)",
            kind="int",
            low=1,
        ),
        Option(
            "n_normals",
            {"smoke": 128, "medium": 1000, "paper": 10000},
            "II-F7 DeepFool normals, at as many training images",
            kind="int",
            low=1,
        ),
        Option(
            "dims",
            {"smoke": [10, 50], "medium": [10, 50, 100], "paper": [10, 50, 100, 500]},
            "II-F7 subspace dimensions, distinct",
            kind="ints",
            low=1,
        ),
    ]
)
N_TOP = 4  # singular vectors shown


def run(cfg: dict) -> dict:
    """II-F5, II-T6 and II-F7 on the natural ResNet-18 and its universal perturbation at xi."""
    if len(set(cfg["dims"])) != len(cfg["dims"]):
        raise ValueError(f"option dims must not repeat a value, got {cfg['dims']!r}")
    scales, dims = sorted(set(cfg["scales"]) | {1.0}), sorted(cfg["dims"])  # xi itself is always measured
    train_data, test_data = zoo.load_data(cfg["data"])
    for name in ("n_train", "n_normals", "ft_size"):
        if cfg[name] is not None and cfg[name] > len(train_data):
            raise ValueError(f"option {name} must be at most the {len(train_data)} training images, got {cfg[name]}")
    if cfg["n_eval"] is not None and cfg["n_eval"] > len(test_data):
        raise ValueError(f"option n_eval must be at most the {len(test_data)} test images, got {cfg['n_eval']}")
    uaps.check_sweep(cfg, len(train_data), len(test_data))
    dim = train_data.x[0].numel()
    if dims[-1] > min(cfg["n_normals"], dim):
        raise ValueError(
            f"option dims must be at most min(n_normals, pixels x channels) = "
            f"{min(cfg['n_normals'], dim)}, got {cfg['dims']}"
        )

    device = default_device()
    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data)
    norm, xi = cfg["norm"], uaps.xi(cfg)
    solver = uaps.solver(cfg)
    base = {"model": spec, "test": test_data.identity, "n_eval": cfg["n_eval"], "n_train": cfg["n_train"], **solver}
    x_eval, y_eval = uaps.test_images(test_data, cfg["n_eval"], device)
    shape = x_eval.shape[1:]
    clean = []  # C(x) on the evaluation images, computed on first use (a stored result needs none)

    def fooling(vs):
        if not clean:
            clean.append(attacks.predict(model, x_eval, device_batch(device)))
        return uaps.fooling(model, x_eval, clean[0], vs)

    def solve(net, radius, seed=cfg["uap_seed"]):
        x = train_data.x[uaps.pick(train_data, cfg["n_train"], seed)]
        return algorithm1.uap(
            net,
            x,
            xi=radius,
            norm=norm,
            delta=cfg["delta"],
            max_passes=cfg["max_passes"],
            overshoot=uaps.OVERSHOOT,
            batched=True,
            batch_size=cfg["uap_batch"],
            seed=seed,
            desc=f"Algorithm 1, xi={radius:.3g}",
        )[0]

    # II-F5: random versus universal, fooling rate against the norm.
    found, v_hash = uaps.universal(model, spec, train_data, n=cfg["n_train"], norm=norm, xi=xi[norm], **solver)
    f5_params = {
        **base,
        "norm": norm,
        "xi": xi[norm],
        "v": v_hash,
        "scales": scales,
        "draws": cfg["draws"],
        "recompute": cfg["recompute"],
    }

    def f5(_workdir):
        radii = [s * xi[norm] for s in scales]
        noise = uaps.random_direction(norm, 1.0, (cfg["draws"], *shape), generator(cfg["uap_seed"]))
        out = {
            "radii": radii,
            "random": torch.stack([fooling(r * noise) for r in bar(radii, desc="random")], dim=1),  # [draws, radii]
            "scaled": fooling([uaps.rescale(found["v"], norm, r) for r in radii]),
            "recomputed": None,
        }
        if cfg["recompute"]:
            out["recomputed"] = fooling([solve(model, r) for r in radii])
        return out

    f5_out = store.fetch("uap-random", f5_params, f5)

    # The radius the claims are decided at (uaps.RULE), from the uap section's sweep (shared in the store):
    # for the section's norm (II-F5, II-T6) and for l2 (II-F7).
    chosen = {
        n: uaps.picked(uaps.sweep(model, spec, train_data, test_data, cfg, n)) for n in dict.fromkeys([norm, "l2"])
    }

    # II-T6: fine-tuning on clean and universally perturbed images, for a few rounds, at xi and at the
    # picked radius.
    def finetuned(radius, start):
        """The rounds of II-T6 at `radius`; round 0's first perturbation is `start` (None: solved here)."""
        params = {
            **base,
            "norm": norm,
            "xi": radius,
            "v": None if start is None else store.digest(start),
            "rounds": cfg["rounds"],
            "ft_epochs": cfg["ft_epochs"],
            "ft_lr": cfg["ft_lr"],
            "ft_size": cfg["ft_size"],
            "pool": cfg["pool"],
            "ft_batch": cfg["batch_size"],
            "weight_decay": cfg["weight_decay"],
        }

        def t6(workdir):
            net, path = copy.deepcopy(model), workdir / "rounds.pt"
            state = {"rounds": [], "pool": None, "model": None}
            if path.exists():  # resume after the last finished round
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state["model"])
            first_v = state["rounds"][0]["v"] if state["rounds"] else None
            for r in bar(range(len(state["rounds"]), cfg["rounds"] + 1), desc="fine-tuning rounds"):
                if r > 0:
                    finetune(
                        net,
                        train_data,
                        state["pool"],
                        epochs=cfg["ft_epochs"],
                        lr=cfg["ft_lr"],
                        size=cfg["ft_size"],
                        batch_size=cfg["batch_size"],
                        weight_decay=cfg["weight_decay"],
                        seed=derive_seed(cfg["uap_seed"], r),
                        device=device,
                    )
                pool = torch.stack(
                    [
                        start if r == 0 and k == 0 and start is not None else solve(net, radius, cfg["uap_seed"] + k)
                        for k in range(cfg["pool"])
                    ]
                ).cpu()
                first_v = pool[0] if first_v is None else first_v
                clean_r = attacks.predict(net, x_eval, device_batch(device))
                state["rounds"].append(
                    {
                        "v": pool[0],
                        "fooling": uaps.fooling(net, x_eval, clean_r, pool[:1]).item(),  # the fresh perturbation
                        "fooling_first": uaps.fooling(net, x_eval, clean_r, first_v[None]).item(),  # round 0's one
                        "clean_acc": (clean_r.cpu() == y_eval).float().mean().item(),
                    }
                )
                state["pool"], state["model"] = pool, {k: v.cpu() for k, v in net.state_dict().items()}
                save_atomic(state, path)
            return {"rounds": state["rounds"]}

        return store.fetch("uap-finetune", params, t6)["rounds"]

    rounds = finetuned(xi[norm], found["v"])  # round 0's first perturbation is II-F5's (same model, X and seed)
    rounds_picked = None if chosen[norm] is None else finetuned(chosen[norm], None)

    # II-F7: singular values of the DeepFool normals, and random vectors from their top span.
    f7_radii = [xi["l2"]] + ([] if chosen["l2"] is None else [chosen["l2"]])  # the same draws at each radius
    f7_params = {**base, "radii": f7_radii, "n_normals": cfg["n_normals"], "dims": dims, "draws": cfg["draws"]}

    def f7(_workdir):
        x = train_data.x[uaps.pick(train_data, cfg["n_normals"], cfg["uap_seed"])]
        chunk = device_batch(device)  # bounds the memory of DeepFool's backward passes
        r = torch.cat(
            [
                algorithm1.deepfool(model, x[i : i + chunk].to(device), norm="l2").flatten(1)
                for i in bar(range(0, len(x), chunk), desc="deepfool")
            ]
        )
        lengths = r.norm(dim=1)
        normals = r[lengths > 0] / lengths[lengths > 0, None]
        # the singular-value decay is the figure: float64, not the GPU's fast fp32 drivers
        _, s_normals, vh = torch.linalg.svd(normals.double(), full_matrices=False)
        vh = vh.float()
        gen = generator(cfg["uap_seed"], device)
        rand = torch.randn(normals.shape, generator=gen, device=device)
        s_random = torch.linalg.svdvals((rand / rand.norm(dim=1, keepdim=True)).double())

        def draw(basis=None):  # unit draws, uniform on the sphere of span(basis) (None: of all)
            z = torch.randn(
                cfg["draws"], normals.shape[1] if basis is None else len(basis), generator=gen, device=device
            )
            z = z if basis is None else z @ basis
            return (z / z.norm(dim=1, keepdim=True)).view(cfg["draws"], *shape)

        inside, free = [draw(vh[:k]) for k in dims], draw()

        return {
            "singular_normals": s_normals.cpu(),
            "singular_random": s_random.cpu(),
            "kept": len(normals),
            "median_length": lengths.median().item(),  # the typical per-image minimal l2 perturbation
            "subspace": torch.stack(
                [torch.stack([fooling(a * d) for d in inside]) for a in f7_radii]
            ),  # [radii, dims, draws]
            "unconstrained": torch.stack([fooling(a * free) for a in f7_radii]),  # [radii, draws]
            "top": vh[:N_TOP].reshape(-1, *shape).cpu(),
        }

    f7_out = store.fetch("uap-normals", f7_params, f7)

    s_n, s_r = f7_out["singular_normals"], f7_out["singular_random"]
    picked = {"xi": chosen, "rule": uaps.RULE, "f5": None, "t6": None, "f7": None}
    if rounds_picked is not None:
        radius = chosen[norm]
        noise = store.fetch(  # II-F5's draws at the picked radius, on the model before fine-tuning
            "uap-random-picked",
            {**base, "norm": norm, "xi": radius, "draws": cfg["draws"]},
            lambda _w: {
                "random": fooling(
                    radius * uaps.random_direction(norm, 1.0, (cfg["draws"], *shape), generator(cfg["uap_seed"]))
                )
            },
        )["random"]
        picked["f5"] = {
            "scales": [1.0],
            "radii": [radius],
            "random": [[d] for d in noise.tolist()],
            "scaled": [rounds_picked[0]["fooling"]],
        }
        picked["t6"] = {"rounds": [{k: d[k] for k in ("fooling", "fooling_first", "clean_acc")} for d in rounds_picked]}
    if chosen["l2"] is not None:
        picked["f7"] = {"dims": dims, "subspace": f7_out["subspace"][1], "unconstrained": f7_out["unconstrained"][1]}
    results = {
        "classes": list(train_data.classes),
        "norm": norm,
        "xi": xi,
        "n_eval": len(y_eval),
        "n_train": cfg["n_train"],
        "clean_acc": meta["clean_acc"],
        "universal_history": found["history"],
        "f5": {
            "scales": scales,
            "radii": f5_out["radii"],
            "random": f5_out["random"],
            "scaled": f5_out["scaled"],
            "recomputed": f5_out["recomputed"],
        },
        "t6": {
            "rounds": [{k: d[k] for k in ("fooling", "fooling_first", "clean_acc")} for d in rounds],
            "ft_epochs": cfg["ft_epochs"],
            "ft_lr": cfg["ft_lr"],
            "pool": cfg["pool"],
            "ft_size": cfg["ft_size"] or len(train_data),
        },
        "f7": {
            "dims": dims,
            "kept": f7_out["kept"],
            "median_length": f7_out["median_length"],
            "subspace": f7_out["subspace"][0],
            "unconstrained": f7_out["unconstrained"][0],
            "rank90_normals": energy_rank(s_n),
            "rank90_random": energy_rank(s_r),
        },
        "picked": picked,
    }
    tensors = {
        "universal": found["v"].float(),
        "rounds": torch.stack([d["v"] for d in rounds]).float(),
        "singular_normals": s_n.float(),
        "singular_random": s_r.float(),
        "top": f7_out["top"].float(),
    }
    return {"results": results, "tensors": tensors, "data": records.data_note(train_data, test_data)}


def energy_rank(s, share: float = 0.9) -> int:
    """How many of the singular values s (descending) hold `share` of the energy (sum of squares)."""
    energy = (s.double() ** 2).cumsum(0) / (s.double() ** 2).sum()
    return int((energy < share).sum()) + 1


def finetune(net, train_data, pool, *, epochs, lr, size, batch_size, weight_decay, seed, device):
    """Fine-tune `net` in place with SGD: every training image (random crop and flip) gets, with
    probability 1/2, a perturbation drawn from `pool` [P, C, H, W], keeping its true label."""
    index = torch.arange(len(train_data)) if size is None else uaps.pick(train_data, size, seed)
    x, y, pool = train_data.x[index].to(device), train_data.y[index].to(device), pool.to(device)
    g = generator(seed, device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    net.train()
    for _ in bar(range(epochs), desc="fine-tuning"):
        order = torch.randperm(len(y), generator=g, device=device)
        for i in range(0, len(y), batch_size):
            b = order[i : i + batch_size]
            xb = to_float(crop_flip(x[b], generator=g))
            which = torch.randint(len(pool), (len(b),), generator=g, device=device)
            on = torch.rand(len(b), generator=g, device=device) < 0.5
            xb = torch.where(on[:, None, None, None], (xb + pool[which]).clamp(0, 1), xb)
            with autocast(device):
                loss = F.cross_entropy(net(xb).float(), y[b])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()


# ---- Verdicts -------------------------------------------------------------------------------------


def _draws(values: list, n: int) -> tuple[float, float]:
    """(mean, s.e.) of fooling rates of random draws each scored on n images: the spread of the
    draws, or with one draw its binomial s.e."""
    mean, se = claims.mean_se(values)
    return mean, se if len(values) > 1 else claims.binomial_se(mean, n)


def _at_xi(r: dict) -> tuple[float, list]:
    """(universal, random draws) fooling rates of II-F5 at xi itself."""
    f5 = r["f5"]
    at = f5["scales"].index(1.0)
    return f5["scaled"][at], [row[at] for row in f5["random"]]


def verdicts(rec: dict) -> list[claims.Verdict]:
    """II-F5 (universal beats random noise of its norm), II-T6 (fine-tuning lowers the fooling
    rate but does not remove it), II-F7 (the normals span few directions; random vectors there fool)."""
    r = rec["results"]
    return [_f5(r), _t6(r), _f7_spectrum(r), _f7_subspace(r), *_at_picked(r)]


AT_PICKED = " (at the picked radius)"  # the claims again at uaps.RULE's radius, named apart


def _at_picked(r: dict) -> list[claims.Verdict]:
    """II-F5, II-T6 and II-F7's subspace claim at the radius uaps.RULE picked (the record's
    "picked"), named with AT_PICKED; "cannot be tested" where no swept radius qualifies."""
    p = r["picked"]
    out = []
    for check, part in ((_f5, "f5"), (_t6, "t6"), (_f7_subspace, "f7")):
        v = check(r)  # the claim's wording, and the verdict where nothing is picked
        if part == "f7":
            norm, ready = "l2", p["f7"] is not None
        else:
            norm, ready = r["norm"], p["f5"] is not None
        if not ready:
            out.append(
                dataclasses.replace(
                    v,
                    claim=v.claim + AT_PICKED,
                    effect=None,
                    spread=None,
                    status="cannot be tested",
                    detail=f"cannot be tested at these radii: no radius of the sweep meets the rule ({p['rule']})",
                )
            )
            continue
        view = {**r, "f5": p["f5"] or r["f5"], "t6": p["t6"] or r["t6"], "f7": p["f7"] or r["f7"]}
        v = check(view)
        where = uaps.radius_text(norm, p["xi"][norm])
        out.append(dataclasses.replace(v, claim=v.claim + AT_PICKED, detail=f"at {norm} xi {where}: {v.detail}"))
    return out


def _f5(r: dict) -> claims.Verdict:
    n = r["n_eval"]
    universal, draws = _at_xi(r)
    top = max(draws)
    gap, se = universal - top, claims.diff_se(claims.binomial_se(universal, n), claims.binomial_se(top, n))
    return claims.Verdict(
        claim="a universal perturbation fools far more than random noise of its norm",
        test="II-F5",
        effect=100 * gap,
        spread=100 * se,
        unit="points",
        status="holds" if claims.exceeds(gap, se) else "does not hold",
        criterion=f"at xi the universal perturbation fools more than every random draw by over {claims.K_SE} s.e.",
        detail=f"universal {100 * universal:.1f}%, random {100 * sum(draws) / len(draws):.1f}% on average over "
        f"{len(draws)} draws (at most {100 * top:.1f}%)",
    )


def _t6(r: dict) -> claims.Verdict:
    n, rounds = r["n_eval"], r["t6"]["rounds"]
    chance, chance_se = _draws(_at_xi(r)[1], n)
    start, end = rounds[0]["fooling"], rounds[-1]["fooling"]
    common = dict(
        claim="fine-tuning lowers the fooling rate but does not remove it",
        test="II-T6",
        unit="points",
        criterion=claims.quoted(
            "further rounds give no improvement, hovering around ...",
            "the fooling rate of a freshly computed perturbation drops over the rounds "
            f"by over {claims.K_SE} s.e. and stays above random noise of its norm by "
            f"over {claims.K_SE} s.e.",
        ),
    )
    if not claims.exceeds(start - chance, claims.diff_se(claims.binomial_se(start, n), chance_se)):
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            status="cannot be tested",
            detail=f"before fine-tuning the perturbation fools {100 * start:.1f}%, no more than "
            f"random noise ({100 * chance:.1f}%)",
        )
    drop, se = start - end, claims.diff_se(claims.binomial_se(start, n), claims.binomial_se(end, n))
    dropped = claims.exceeds(drop, se)
    remains = claims.exceeds(end - chance, claims.diff_se(claims.binomial_se(end, n), chance_se))
    return claims.Verdict(
        **common,
        effect=100 * drop,
        spread=100 * se,
        status=claims.outcome(dropped + remains, 2),
        detail=f"{100 * start:.1f}% before, {100 * end:.1f}% after {len(rounds) - 1} round(s) (random noise "
        f"{100 * chance:.1f}%): {'drops' if dropped else 'does not drop'}, "
        f"{'stays above noise' if remains else 'falls to noise'}",
    )


def _f7_spectrum(r: dict) -> claims.Verdict:
    f7 = r["f7"]
    fewer = f7["rank90_random"] - f7["rank90_normals"]
    return claims.Verdict(
        claim="the boundary's normals concentrate in few directions",
        test="II-F7",
        effect=fewer,
        spread=None,
        unit="directions",
        status="holds" if fewer > 0 else "does not hold",
        criterion="90% of the normals' energy sits in fewer singular directions than for as many random unit vectors",
        detail=f"{f7['rank90_normals']} directions for {f7['kept']:,} normals, {f7['rank90_random']} for random "
        "vectors",
    )


def _f7_subspace(r: dict) -> claims.Verdict:
    n, f7 = r["n_eval"], r["f7"]
    free, free_se = _draws(f7["unconstrained"], n)
    best = max(range(len(f7["dims"])), key=lambda i: sum(f7["subspace"][i]))
    sub, sub_se = _draws(f7["subspace"][best], n)
    gap, se = sub - free, claims.diff_se(sub_se, free_se)
    return claims.Verdict(
        claim="random vectors in the normals' top span fool more than unconstrained ones",
        test="II-F7",
        effect=100 * gap,
        spread=100 * se,
        unit="points",
        status="holds" if claims.exceeds(gap, se) else "does not hold",
        criterion=claims.quoted(
            "a random vector from the span of the top singular vectors of the boundary normals "
            "fools ... of images, an unconstrained random vector of the same norm ...",
            "at l2 norm xi, random vectors from the best top-k span fool more than unconstrained "
            f"random vectors by over {claims.K_SE} s.e. (mean over draws)",
        ),
        detail=f"top {f7['dims'][best]} directions {100 * sub:.1f}%, unconstrained {100 * free:.1f}%",
    )
