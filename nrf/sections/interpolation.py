"""Section "Interpolating universality" (I-T1, I-T5, I-F7, I-T2): D_univ at every base-set size K.

The K rows of the catalogue (K = 1 is D_adv), the single-class variant and D_adv at eps/2 (for
the budget comparison I-T5) are trained on over the hyperparameter grid, exactly as in the
Generalisation section, whose points they share through the store. I-F7 takes the perturbation
toward one target from every K row.
"""

import torch

from .. import claims, constructed, grid, options, records
from ..options import Option

OPTIONS = options.MODELS + constructed.OPTIONS + grid.TRAINING + grid.GRID + [
    Option("target", "dog", "the target class of I-F7", kind="class"),
]


def run(cfg: dict, progress: bool = True) -> dict:
    """The grid over the K rows, the single-class variant and D_adv at eps/2: every point, each
    data set's best, the K rows ({K: data set}), and I-F7's perturbation toward `target` per K."""
    grid.settings(cfg)
    cat = constructed.Catalogue(cfg)
    target = options.class_index(cfg["target"], cat.classes, "target")
    cat.build(progress=progress)
    rows = {k: constructed.k_name(k, cfg["K_univ"]) for k in sorted(cfg["Ks"])}
    names = list(dict.fromkeys([*rows.values(), "univ-class", "adv-half"]))
    out = grid.run(cat, names, cfg, progress=progress)
    deltas = []
    for name in rows.values():
        ex = cat.examples[name]
        hit = (ex["delta_targets"] == target).nonzero()
        deltas.append(ex["deltas"][hit[0, 0]] if len(hit) else torch.zeros(ex["deltas"].shape[1:]))
    results = {
        "K": {str(k): n for k, n in rows.items()}, "restrict_K": cfg["restrict_K"],
        "datasets": {n: {**cat.names[n], "size": cat.size(n), "base_size": cat.stats[n]["base_size"]} for n in names},
        **out, "n_test": len(cat.test), "chance": cat.chance, "classes": cat.classes, "target": cat.classes[target],
        "fine_labels": cat.train.fine_y is not None, "eps_scale": cfg["eps_scale"],
    }
    return {"results": results, "tensors": {"deltas": torch.stack(deltas)},
            "data": records.data_note(cat.train, cat.test)}


def _acc(r: dict, name: str) -> float:
    return r["best"][name]["final_acc"]


def _se(r: dict, name: str) -> float:
    return claims.binomial_se(_acc(r, name), r["n_test"])


def _gap(r: dict, a: str, b: str) -> tuple[float, float]:
    """(a - b, its standard error), in points, of two data sets' best final test accuracies."""
    return 100 * (_acc(r, a) - _acc(r, b)), 100 * claims.diff_se(_se(r, a), _se(r, b))


def verdicts(rec: dict) -> list[claims.Verdict]:
    """I-T1: accuracy falls from the smallest to the largest K by more than 2 s.e. (testable when
    the smallest K beats chance by 2 s.e.). I-T5: D_univ at K = 2 and D_adv at eps/2 differ by more
    than 2 s.e. (budget-splitting alone does not explain the K effect). I-T2: the single-class
    restriction changes accuracy by at most 2 s.e. or half the K drop ("helps only a little");
    single subclasses need fine-grained labels."""
    r = rec["results"]
    rows = {int(k): n for k, n in r["K"].items()}
    first, last = rows[min(rows)], rows[max(rows)]
    signal = claims.exceeds(_acc(r, first) - r["chance"], _se(r, first))
    no_signal = (f"even K = {min(rows)} is not 2 s.e. above chance ({100 * _acc(r, first):.1f}% against "
                 f"{100 * r['chance']:.1f}%)")
    drop, drop_se = _gap(r, first, last)
    ordered = [_acc(r, n) for n in rows.values()]
    falls = sum(b <= a for a, b in zip(ordered, ordered[1:]))
    found = [claims.Verdict(
        claim="generalisation falls as K grows", test="I-T1", effect=drop, spread=drop_se, unit="points",
        status="cannot be tested" if not signal else "holds" if claims.exceeds(drop, drop_se) else "does not hold",
        criterion=f"accuracy at K = {min(rows)} above accuracy at K = {max(rows)} by more than 2 s.e.",
        detail=no_signal if not signal else f"accuracy does not rise at {falls} of the {len(ordered) - 1} steps")]

    if 2 in rows:
        d, s = _gap(r, "adv-half", rows[2])
        status = "cannot be tested" if not signal else "holds" if abs(d) > 2 * s else "does not hold"
        detail = no_signal if not signal else (f"D_adv at eps/2 {100 * _acc(r, 'adv-half'):.1f}%, D_univ K = 2 "
                                               f"{100 * _acc(r, rows[2]):.1f}%")
        found.append(claims.Verdict(
            claim="budget-splitting does not explain the K effect", test="I-T5", effect=d, spread=s, unit="points",
            status=status, criterion="D_adv at eps/2 and D_univ with K = 2 at eps differ by more than 2 s.e.",
            detail=detail))
    else:
        found.append(claims.Verdict(
            claim="budget-splitting does not explain the K effect", test="I-T5", effect=None, spread=None, unit="",
            status="not applicable", criterion="D_adv at eps/2 and D_univ with K = 2 at eps differ by more than 2 s.e.",
            detail=f"K = 2 is not among this run's Ks {sorted(rows)}"))

    restrict = rows[r["restrict_K"]]
    d, s = _gap(r, "univ-class", restrict)
    span = max(drop, 0.0)
    little = -2 * s <= d <= max(2 * s, span / 2)
    found.append(claims.Verdict(
        claim="a single-class base set helps only a little", test="I-T2", effect=d, spread=s, unit="points",
        status="cannot be tested" if not signal else "holds" if little else "does not hold",
        criterion="single-class minus random base sets of the same K within 2 s.e., or at most half the K drop",
        detail=no_signal if not signal else f"the K drop is {span:.1f} points"))
    found.append(claims.Verdict(
        claim="a single-subclass base set helps only a little", test="I-T2", effect=None, spread=None, unit="",
        status="not applicable" if not r["fine_labels"] else "cannot be tested",
        criterion="as for a single class, with base sets drawn from one fine-grained class",
        detail="this data set has no fine-grained labels (ImageNet-M10's 60 classes)" if not r["fine_labels"]
        else "the book does not build single-subclass base sets yet"))
    return found
