"""Section "Locality" (I-F3, I-F14, I-F15): which local patches of a universal perturbation
carry its attack signal.

Random square patches are cut out of each target's universal perturbation of the natural
ResNet-18 (zero elsewhere; for l2 rescaled to the largest patch norm) and each patch alone is
scored by its attack success rate (ASR), with nrf.patches: the Gallery zooms on the best patch
and the Scaling section scales the best and worst ones from the same cache.
"""

import math

import torch

from .. import claims, options, patches, records, universals, zoo
from ..options import Option

OPTIONS = options.MODELS + options.THREAT + options.UNIVERSAL + patches.OPTIONS + [
    # A class ImageNet-M10, the paper's data set, shares with CIFAR-10, fixed before looking.
    Option("target", "dog", "I-F3's class (among `targets`)", kind="class"),
    Option("targets", None, "the classes of I-F14 / I-F15 (null: every class)", kind="classes", optional=True),
    Option("extras", {"smoke": False, "medium": True, "paper": True}, "also score the other norm at its paper eps (I-F15 beside "
           "I-F14)", kind="bool"),
]


def run(cfg: dict, progress: bool = True) -> dict:
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
    model, meta = zoo.trained(spec, train_data, test_data, progress=progress)
    threats = [(norm, eps)] + [(o, options.DEFAULT_EPS[o]) for o in options.DEFAULT_EPS if cfg["extras"] and o != norm]
    per_norm, tensors = {}, {}
    for nm, ep in threats:
        uni = universals.per_target(model, spec, train_data, test_data, norm=nm, eps=ep, targets=targets,
                                    seed=cfg["seed"], progress=progress, **universals.solver(cfg, len(train_data)))
        s = patches.score(model, spec, uni, test_data, norm=nm, progress=progress, **opts)
        per_norm[nm] = {"eps": ep, "universal_asr": uni["asr"], "corners": s["corners"], "norms": s["norms"],
                        "asr": s["asr"], "full": s["full"], "chance": s["chance"],
                        "rho": [patches.spearman(n, a) for n, a in zip(s["norms"], s["asr"])]}
        tensors[f"deltas_{nm}"] = uni["deltas"]
    return {
        "results": {"classes": classes, "target": target, "targets": targets, "norm": norm,
                    "clean_acc": meta["clean_acc"], "n_patches": opts["n_patches"], "patch_size": opts["patch_size"],
                    "n_eval": opts["n_eval"] or len(test_data), "n_test": len(test_data), "norms": per_norm},
        "tensors": tensors,
        "data": records.data_note(train_data, test_data),
    }


def dispersion(asr: list[float], n: int) -> float:
    """How much the patches' ASRs vary, in units of the binomial variance one patch's ASR has on
    n images: the sample variance across patches over the mean p(1 - p) / n. About 1 when every
    patch carries the same signal (the differences are noise), larger when some carry more;
    nan when every patch scores 0 or 1."""
    p = torch.tensor(asr, dtype=torch.float64)
    noise = (p * (1 - p)).mean() / n
    return float(p.var() / noise) if noise > 0 and len(p) > 1 else float("nan")


def _local(r: dict, norm: str, n_eval: int, test: str) -> claims.Verdict:
    """Is one norm's attack signal concentrated in some patches? Testable only where the whole
    perturbations carry signal over chance on the scored images."""
    p = r["norms"][norm]
    claim = f"the attack signal is local ({norm}): some patches carry much more of it than others"
    criterion = ("for every target, the patch ASRs vary more than binomial noise: variance ratio above 1 by more "
                 "than 2 s.e. (sqrt(2 / (patches - 1)))")
    lifts = [f - c for f, c in zip(p["full"], p["chance"])]
    lift_se = claims.diff_se(*[claims.diff_se(claims.binomial_se(f, n_eval), claims.binomial_se(c, n_eval))
                               for f, c in zip(p["full"], p["chance"])]) / len(lifts)
    if not claims.exceeds(sum(lifts) / len(lifts), lift_se):
        return claims.Verdict(
            claim=claim, test=test, effect=None, spread=None, unit="", status="cannot be tested", criterion=criterion,
            detail=f"the whole perturbations lift ASR over chance by only {100 * sum(lifts) / len(lifts):.1f} ± "
                   f"{100 * lift_se:.1f} points on the {n_eval} scored images: no signal to localise (score more "
                   "images, n_eval, or use stronger models)")
    ratios = [dispersion(a, n_eval) for a in p["asr"]]
    noise_se = math.sqrt(2 / max(len(p["asr"][0]) - 1, 1))  # s.d. of the ratio when the differences are noise
    passed = sum(claims.exceeds(q, noise_se, margin=1.0) for q in ratios if not math.isnan(q))
    defined = [q for q in ratios if not math.isnan(q)]
    mean, se = claims.mean_se(defined) if defined else (None, None)
    best = [max(a) for a in p["asr"]]
    worst = [min(a) for a in p["asr"]]
    return claims.Verdict(
        claim=claim, test=test, effect=mean, spread=se, unit="x noise variance",
        status=claims.outcome(passed, len(ratios)), criterion=criterion,
        detail=f"{passed} of {len(ratios)} targets; best patch {100 * sum(best) / len(best):.1f}%, worst "
               f"{100 * sum(worst) / len(worst):.1f}% on average, chance {100 * sum(p['chance']) / len(best):.1f}%")


def verdicts(rec: dict) -> list[claims.Verdict]:
    """I-F3 / I-F14 (l2) and I-F15 (linf): do the patches of a perturbation differ in attack
    signal by more than the noise of scoring each on n_eval images? (Whether the best patches are
    also the most recognisable ones is for the reader.)"""
    r = rec["results"]
    ids = {"l2": "I-F14", "linf": "I-F15"}
    return [_local(r, nm, r["n_eval"], f"I-F3, {ids[nm]}" if nm == r["norm"] else ids[nm]) for nm in r["norms"]]
