"""Section "Generalisation" (I-T3, I-T8): fresh ResNet-18s trained on D_adv and D_univ.

The catalogue of constructed data sets is built once (nrf.constructed); every data set of
DATASETS is trained on with every setting of the hyperparameter grid (nrf.grid: points already
in the store, e.g. from `nrf sweep constructed_training`, are not trained again) and each data
set is reported with its best setting, tested on the clean test set.
"""

from .. import claims, constructed, grid, options, records

OPTIONS = options.MODELS + constructed.OPTIONS + grid.TRAINING + grid.GRID
DATASETS = ["adv", "adv-half", "univ", "adv-linf", "univ-linf"]
PAIRS = {"l2": ("adv", "univ"), "linf": ("adv-linf", "univ-linf")}  # norm -> (standard, universal)


def run(cfg: dict, progress: bool = True) -> dict:
    """The grid over DATASETS: every point and each data set's best, with the data sets'
    recipes and sizes, the test set's size and the chance level."""
    grid.settings(cfg)  # checks the grid before any work
    cat = constructed.Catalogue(cfg).build(progress=progress)
    out = grid.run(cat, DATASETS, cfg, progress=progress)
    results = {"datasets": {n: {**cat.names[n], "size": cat.size(n)} for n in DATASETS}, **out,
               "n_test": len(cat.test), "chance": cat.chance, "classes": cat.classes, "eps_scale": cfg["eps_scale"],
               "natural_acc": cat.meta["clean_acc"]}
    return {"results": results, "data": records.data_note(cat.train, cat.test)}


def gap(r: dict, a: str, b: str) -> tuple[float, float]:
    """(a - b, its standard error), in points, of two data sets' best final test accuracies."""
    pa, pb, n = r["best"][a]["final_acc"], r["best"][b]["final_acc"], r["n_test"]
    return 100 * (pa - pb), 100 * claims.diff_se(claims.binomial_se(pa, n), claims.binomial_se(pb, n))


def above_chance(r: dict, name: str) -> bool:
    """Does the best model trained on `name` beat chance by more than 2 standard errors?"""
    p = r["best"][name]["final_acc"]
    return claims.exceeds(p - r["chance"], claims.binomial_se(p, r["n_test"]))


def verdicts(rec: dict) -> list[claims.Verdict]:
    """Claim 3, per norm: the model trained on D_univ generalises worse than the one trained on
    D_adv, by more than 2 s.e. of the difference, provided D_adv itself beats chance."""
    r = rec["results"]
    found = []
    for norm, (adv, univ) in PAIRS.items():
        d, s = gap(r, adv, univ)
        accs = f"{adv} {100 * r['best'][adv]['final_acc']:.1f}%, {univ} {100 * r['best'][univ]['final_acc']:.1f}%"
        if not above_chance(r, adv):
            status, detail = "cannot be tested", f"{adv} is not 2 s.e. above chance ({100 * r['chance']:.1f}%): {accs}"
        else:
            status = "holds" if claims.exceeds(d, s) else "does not hold"
            detail = accs
        found.append(claims.Verdict(
            claim=f"D_univ generalises worse than D_adv ({norm})", test="I-T3", effect=d, spread=s, unit="points",
            status=status, criterion="D_adv's clean test accuracy above D_univ's by more than 2 s.e., D_adv above "
            "chance by 2 s.e.", detail=detail))
    return found
