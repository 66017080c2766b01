"""Section "Locality" (I-F3, I-F14, I-F15): which local patches of a universal perturbation
carry its attack signal.

Random square patches are cut out of each target's universal perturbation of the natural
ResNet-18 (zero elsewhere; for l2 rescaled to the largest patch norm) and each patch alone is
scored by its attack success rate (ASR), with nrf.patches: the Gallery zooms on the best patch
and the Scaling section scales the best and worst ones from the same cache.
"""

import torch

from .. import attacks, claims, options, patches, records, store, universals, zoo
from ..data import to_float
from ..options import Option

OPTIONS = (
    options.MODELS
    + options.THREAT
    + options.UNIVERSAL
    + patches.OPTIONS
    + [
        # A class ImageNet-M10, the paper's data set, shares with CIFAR-10, fixed before looking.
        Option("target", "dog", "I-F3's class (among `targets`)", kind="class"),
        Option("targets", None, "the classes of I-F14 / I-F15 (null: every class)", kind="classes", optional=True),
        Option(
            "extras",
            {"smoke": False, "medium": True, "paper": True},
            "also score the other norm at its paper eps (I-F15 beside I-F14)",
            kind="bool",
        ),
    ]
)


def run(cfg: dict) -> dict:
    """Score the patches of the natural ResNet-18's universal perturbations, one per target, for
    the threat model (and with `extras` the other norm too)."""
    norm, eps = options.threat(cfg)
    train_data, test_data = zoo.load_data(cfg["data"])
    universals.solver(cfg, len(train_data))  # checks base_size before anything trains
    classes = list(train_data.classes)
    target = options.class_index(cfg["target"], classes, "target")
    targets = options.class_indices(cfg["targets"], classes, "targets")
    if target not in targets:
        raise ValueError(f"option target must be one of targets {[classes[t] for t in targets]}, got {cfg['target']!r}")
    opts = patches.settings(cfg, train_data.x.shape[-1], len(test_data))

    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data)
    threats = [(norm, eps)] + [(o, options.DEFAULT_EPS[o]) for o in options.DEFAULT_EPS if cfg["extras"] and o != norm]
    per_norm, tensors = {}, {}
    for nm, ep in threats:
        uni = universals.per_target(
            model,
            spec,
            train_data,
            test_data,
            norm=nm,
            eps=ep,
            targets=targets,
            seed=cfg["seed"],
            **universals.solver(cfg, len(train_data)),
        )
        s = patches.score(model, spec, uni, test_data, norm=nm, **opts)
        q = [claims.cochran_q(h.T.tolist())[0] for h in hits(model, spec, uni, s, test_data, norm=nm)]
        per_norm[nm] = {
            "eps": ep,
            "universal_asr": uni["asr"],
            "corners": s["corners"],
            "norms": s["norms"],
            "asr": s["asr"],
            "full": s["full"],
            "chance": s["chance"],
            "rho": [patches.spearman(n, a) for n, a in zip(s["norms"], s["asr"])],
            "q": q,
            "q_df": opts["n_patches"] - 1,
        }
        tensors[f"deltas_{nm}"] = uni["deltas"]
    return {
        "results": {
            "classes": classes,
            "target": target,
            "targets": targets,
            "norm": norm,
            "clean_acc": meta["clean_acc"],
            "n_patches": opts["n_patches"],
            "patch_size": opts["patch_size"],
            "n_eval": opts["n_eval"] or len(test_data),
            "n_test": len(test_data),
            "norms": per_norm,
        },
        "tensors": tensors,
        "data": records.data_note(train_data, test_data),
    }


def hits(model, spec: dict, universal: dict, scored: dict, test_data, *, norm: str) -> torch.Tensor:
    """Which scored images each patch of patches.score sends to its target: [T, P] patches x n
    images, bool, from the store or computed. Every patch of a target is scored on the same
    images, so a test of "some patches carry more signal" must pair them image by image."""
    params = {
        "model": spec,
        "test": test_data.identity,
        "deltas": store.digest(universal["deltas"]),
        "targets": list(universal["targets"]),
        "norm": norm,
        "corners": scored["corners"].tolist(),
        "size": scored["size"],
        "images": store.digest(scored["eval_index"]),
    }

    def compute(_workdir) -> dict:
        x = to_float(test_data.x[scored["eval_index"]])  # on the CPU: a GPU's x / 255 may differ in the last bit
        found = []
        for delta, target in zip(universal["deltas"], universal["targets"]):
            cuts, _ = patches.cut(delta, scored["corners"], scored["size"], norm)
            found.append(torch.stack([attacks.classify(model, x, c).cpu() == target for c in cuts]))
        return {"hits": torch.stack(found)}

    return store.fetch("patch-hits", params, compute)["hits"]


SENTENCE = "the patches with the highest ASR are more semantically identifiable with the target class"


def _local(r: dict, norm: str, n_eval: int, test: str) -> claims.Verdict:
    """Is one norm's attack signal concentrated in some patches? Cochran's Q over each target's
    patches, paired on the images they were all scored on. Testable only where the whole
    perturbations carry signal over chance on the scored images."""
    p = r["norms"][norm]
    claim = f"the attack signal is local ({norm}): some patches carry much more of it than others"
    criterion = claims.quoted(
        SENTENCE,
        "(an extension: the paper did not run this on CIFAR-10, whose perturbations "
        "it calls more global) for every target, the patches' hits on the same images differ: "
        f"Cochran's Q over the patches above its chi-square null by more than {claims.K_SE} s.e. "
        "(Wilson-Hilferty z)",
    )
    lifts = [f - c for f, c in zip(p["full"], p["chance"])]
    lift_se = claims.diff_se(
        *[
            claims.diff_se(claims.binomial_se(f, n_eval), claims.binomial_se(c, n_eval))
            for f, c in zip(p["full"], p["chance"])
        ]
    ) / len(lifts)
    common = dict(claim=claim, test=test, criterion=criterion)
    if not claims.exceeds(sum(lifts) / len(lifts), lift_se):
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            unit="",
            status="cannot be tested",
            detail=f"the whole perturbations lift ASR over chance by only {100 * sum(lifts) / len(lifts):.1f} ± "
            f"{100 * lift_se:.1f} points on the {n_eval} scored images: no signal to localise (score more "
            "images, n_eval, or use stronger models)",
        )
    if "q" not in p:
        return claims.Verdict(
            **common,
            effect=None,
            spread=None,
            unit="",
            status="cannot be tested",
            detail="this record predates the paired test (no per-image hits): recompute it",
        )
    zs = [claims.chi2_z(q, p["q_df"]) for q in p["q"]]
    passed = sum(z > claims.K_SE for z in zs)
    mean, se = claims.mean_se([q / p["q_df"] for q in p["q"]])
    best, worst = [max(a) for a in p["asr"]], [min(a) for a in p["asr"]]
    return claims.Verdict(
        **common,
        effect=mean,
        spread=se,
        unit="x its null (Q / df)",
        status=claims.outcome(passed, len(zs)),
        detail=f"{passed} of {len(zs)} targets; best patch {100 * sum(best) / len(best):.1f}%, worst "
        f"{100 * sum(worst) / len(worst):.1f}% on average, chance {100 * sum(p['chance']) / len(best):.1f}%",
    )


def verdicts(rec: dict) -> list[claims.Verdict]:
    """I-F3 / I-F14 (l2) and I-F15 (linf): do the patches of a perturbation differ in attack
    signal by more than the noise of scoring each on n_eval images? (Whether the best patches are
    also the most recognisable ones is for the reader.)"""
    r = rec["results"]
    ids = {"l2": "I-F14", "linf": "I-F15"}
    return [_local(r, nm, r["n_eval"], f"I-F3, {ids[nm]}" if nm == r["norm"] else ids[nm]) for nm in r["norms"]]
