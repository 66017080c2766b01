"""Section "Constructed data sets": D_adv, D_univ and their variants, built once for the sections
that train on them (Generalisation, Interpolation, Leakage).

The catalogue (nrf.constructed.Catalogue) builds every variant with the natural ResNet-18, keeps
the fooled examples and cuts the variants of each norm to the same per-(source class, target)
counts (the cyclic one alone); this section reports what was built and kept, with a test of
independence of the kept labels from the classes, and shows a few examples.
"""

from .. import claims, constructed, options, records
from ..constructed import BUDGET, CYCLIC

OPTIONS = options.MODELS + constructed.OPTIONS
EXAMPLES = ("adv", "univ", CYCLIC)  # the variants whose kept images the page shows
N_EXAMPLES = 3


def run(cfg: dict) -> dict:
    """Build (or load) the catalogue: per variant its recipe, what was built, the share fooled
    (overall and per target), what was kept per (class, target) cell and its label balance."""
    cat = constructed.Catalogue(cfg).build()
    variants = {}
    for name, s in cat.stats.items():
        variants[name] = {
            **s["variant"],
            "built": s["built"],
            "fooled": s["fooled"],
            "fooled_first": s["fooled_first"],
            "fooled_by_target": s["fooled_by_target"],
            "solver_curve": s["solver_curve"],
            "group": constructed.group(name, s["variant"]),
            "kept": s["kept"],
            "base_size": s["base_size"],
            "label_counts": s["label_counts"],
            "table": s["table"],
            "max_gap": s["max_gap"],
            "chi2": s["chi2"],
            "p_value": s["p_value"],
        }
    tensors, labels = {}, {}
    for name in EXAMPLES:
        ex = cat.examples[name]
        tensors[f"original_{name}"] = ex["x"][:N_EXAMPLES]
        tensors[f"perturbed_{name}"] = ex["perturbed"][:N_EXAMPLES]
        labels[name] = ex["t"][:N_EXAMPLES]
    results = {
        "classes": cat.classes,
        "natural_acc": cat.meta["clean_acc"],
        "n_source": len(cat.source),
        "l2_eps": cfg["l2_eps"],
        "linf_eps": cfg["linf_eps"],
        "eps_scale": cfg["eps_scale"],
        "solver_epochs": cfg["solver_epochs"],
        "solver_step": cfg["solver_step"],
        "draws": cfg["draws"],
        "variants": variants,
        "common": cat.common,
        "budget": BUDGET if BUDGET in cat.stats else None,
        "examples": {"sets": list(EXAMPLES), "labels": labels},
    }
    return {"results": results, "tensors": tensors, "data": records.data_note(cat.train, cat.test)}


def verdicts(rec: dict) -> list[claims.Verdict]:
    """What the construction promises (PAPER.md, "Constructed data sets"): new labels uniform and
    independent of the original ones (every kept row P(t | y) at 1/C, and a chi-square test of
    independence that does not reject at 5%), and the variants one page compares (one norm) at
    one size."""
    r = rec["results"]
    v = r["variants"]
    balanced = {n: s for n, s in v.items() if n != CYCLIC}
    gap = max(s["max_gap"] for s in balanced.values())
    p_min = min(s["p_value"] for s in balanced.values())
    kept = v["univ"]["kept"]
    labels = sum(c > 0 for c in v["univ"]["label_counts"])
    found = []
    if not kept:
        status, detail = "cannot be tested", "D_univ keeps no example: no target is reached in every class"
    else:
        status = "holds" if gap < 1e-9 and p_min > 0.05 else "does not hold"
        detail = (
            f"largest gap of P(t | y) from uniform over the {len(balanced)} variants; smallest p-value of "
            f"the chi-square test of independence {p_min:.3g}; {labels} labels kept"
        )
    found.append(
        claims.Verdict(
            claim="new labels uniform and independent of the original ones",
            test="Constructed data sets",
            effect=100 * gap if kept else None,
            spread=None,
            unit="points",
            status=status,
            criterion="every kept (class, label) cell holds the same share 1/C of its class, and the "
            "chi-square test of independence of label and class has p > 0.05, in every variant",
            detail=detail,
            kind="sanity check",
        )
    )
    groups = {}
    for name, s in v.items():
        if name not in (CYCLIC, BUDGET):
            groups.setdefault(s["group"], set()).add(s["kept"])
    uneven = {g: sorted(sizes) for g, sizes in groups.items() if len(sizes) > 1}
    if not kept:
        status, detail = "cannot be tested", "the data sets are empty"
    elif not uneven:
        status = "holds"
        detail = "; ".join(f"the {g} variants keep {next(iter(sizes))} examples each" for g, sizes in groups.items())
    else:
        status, detail = "does not hold", "; ".join(f"the {g} variants keep {sizes}" for g, sizes in uneven.items())
    found.append(
        claims.Verdict(
            claim="D_adv and the variants it is compared with are at D_univ's size",
            test="Constructed data sets",
            effect=None,
            spread=None,
            unit="",
            status=status,
            criterion="the variants of one norm (compared with each other) keep the same number of examples",
            detail=detail,
            kind="sanity check",
        )
    )
    return found
