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


def run(cfg: dict) -> dict:
    """The grid over DATASETS: every point and each data set's best, with the data sets'
    recipes and sizes, the test set's size and the chance level."""
    grid.settings(cfg)  # checks the grid before any work
    cat = constructed.Catalogue(cfg).build()
    out = grid.run(cat, DATASETS, cfg)
    results = {
        "datasets": {n: {**cat.names[n], "size": cat.size(n)} for n in DATASETS},
        **out,
        "n_test": len(cat.test),
        "chance": cat.chance,
        "classes": cat.classes,
        "eps_scale": cfg["eps_scale"],
        "natural_acc": cat.meta["clean_acc"],
    }
    return {"results": results, "data": records.data_note(cat.train, cat.test)}


SENTENCE = "universal non-robust features have much less generalizable signal than standard non-robust features."


def accuracy(r: dict, name: str) -> float:
    """The decided statistic: final-epoch test accuracy at the grid's fixed setting (claims.fixed),
    the mean over its seeds."""
    return claims.fixed(r["points"], name)["final_acc"]


def spread(r: dict, name: str) -> float:
    """Its standard error, the seeds' spread included (grid.spread)."""
    return grid.spread(claims.fixed(r["points"], name), r["n_test"])


def grid_best(r: dict, names) -> str:
    """The paper's statistic for data sets `names`, in words: best over the grid (final epoch, and
    best epoch), chosen on the test set, so shown beside the decision, never deciding it."""
    return ", ".join(
        f"{n} {100 * r['best'][n]['final_acc']:.1f}% (best epoch {100 * r['best'][n]['best_epoch_acc']:.1f}%)"
        for n in names
    )


def gap(r: dict, a: str, b: str) -> tuple[float, float]:
    """(a - b, its standard error with the seeds' spread), in points, of two data sets' best
    final test accuracies (means over seeds)."""
    pa, pb, n = r["best"][a], r["best"][b], r["n_test"]
    return 100 * (pa["final_acc"] - pb["final_acc"]), 100 * claims.diff_se(grid.spread(pa, n), grid.spread(pb, n))


def verdicts(rec: dict) -> list[claims.Verdict]:
    """Claim 3, per norm: D_univ has "much less" signal than D_adv: its accuracy above chance is
    less than half of D_adv's, one-sided by 2 s.e. (the seeds' spread included, grid.spread);
    decided only when D_adv is at least claims.SIGNAL points above chance."""
    r = rec["results"]
    chance = r["chance"]
    found = []
    for norm, (adv, univ) in PAIRS.items():
        pa, pb = accuracy(r, adv), accuracy(r, univ)
        sa, sb = spread(r, adv), spread(r, univ)
        d, s = 100 * (pa - pb), 100 * claims.diff_se(sa, sb)
        # D_adv - D_univ > (D_adv - chance) / 2  <=>  D_adv / 2 + chance / 2 - D_univ > 0
        test = claims.above(
            100 * (pa / 2 + chance / 2 - pb),
            100 * claims.diff_se(sa / 2, sb),
            what="half of D_adv's lift over chance minus D_univ's",
        )
        accs = (
            f"final epoch at the fixed setting, mean over seeds: {adv} {100 * pa:.1f}%, {univ} {100 * pb:.1f}% (chance "
            f"{100 * chance:.1f}%); best over the grid, the paper's statistic: {grid_best(r, (adv, univ))}"
        )
        if not claims.signal(pa, chance):
            status, detail = "cannot be tested", f"{adv} is less than {claims.SIGNAL:g} points above chance: {accs}"
        else:
            status, detail = "holds" if test.passed else "does not hold", accs
        found.append(
            claims.Verdict(
                claim=f"D_univ generalises much worse than D_adv ({norm})",
                test="I-T3",
                effect=d,
                spread=s,
                unit="points",
                status=status,
                detail=detail,
                criterion=claims.quoted(
                    SENTENCE,
                    f"{test.criterion} (D_univ keeps less than half of D_adv's signal; s.e. of binomial and "
                    f"seed spread), at the final epoch of the grid's first setting, mean over seeds, with {adv} "
                    f"at least {claims.SIGNAL:g} points above chance",
                ),
            )
        )
    return found
