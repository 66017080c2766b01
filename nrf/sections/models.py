"""Section "Models" (I-T7): train every model the book uses and measure it."""

from pathlib import Path

from .. import claims, options, records, zoo
from ..options import Option

OPTIONS = options.MODELS + [
    Option("roles", list(zoo.ROLES), "the models to train and report", kind="strs", choices=zoo.ROLES)
]


def run(cfg: dict) -> dict:
    """Train (or load) the models named by `roles`: their recipes, curves and accuracies."""
    train_data, test_data = zoo.load_data(cfg["data"])
    attack = zoo.evaluation(cfg)
    rows = {}
    for role in cfg["roles"]:
        spec = zoo.recipe(cfg, role, train_data.identity)
        model, meta = zoo.trained(spec, train_data, test_data)
        rows[role] = {
            "arch": spec["arch"],
            "width": spec["width"],
            "seed": spec["seed"],
            "epochs": spec["epochs"],
            "adv": spec["adv"],
            "clean_acc": meta["clean_acc"],
            "train_seconds": meta["train_seconds"],
            "robust_acc": zoo.robust_accuracy(model, spec, test_data, attack),
            "test_acc_curve": meta["history"]["test_acc"],
            "recipe": spec,
        }
    return {
        "results": {"models": rows, "attack": attack, "n_test": len(test_data), "test_data": test_data.identity},
        "data": records.data_note(train_data, test_data),
    }


def commit(rec: dict, folder: Path) -> None:
    """Commit the trained models beside the record (folder/models/ROLE.pt and .json): the zoo
    that `zoo.load(profile, role)` reads and that a fresh store takes models from."""
    r = rec["results"]
    for role, row in r["models"].items():
        zoo.export(
            row["recipe"],
            r["test_data"],
            folder / "models" / role,
            {"role": role, "robust_acc": row["robust_acc"], "robust_attack": r["attack"]},
        )


def verdicts(rec: dict) -> list[claims.Verdict]:
    """The robust reference: the adversarially trained model must resist the attack that
    breaks the natural one, or the sections that use it test nothing."""
    r = rec["results"]
    m = r["models"]
    if not {"natural", "robust"} <= set(m):
        return []
    gap = m["robust"]["robust_acc"] - m["natural"]["robust_acc"]
    se = claims.diff_se(
        claims.binomial_se(m["robust"]["robust_acc"], r["n_test"]),
        claims.binomial_se(m["natural"]["robust_acc"], r["n_test"]),
    )
    ok = claims.exceeds(100 * gap, 100 * se)
    return [
        claims.Verdict(
            claim="the robust model is a robust reference",
            test="I-T7",
            effect=100 * gap,
            spread=100 * se,
            unit="points",
            status="holds" if ok else "does not hold",
            criterion="robust accuracy of the robust model above the natural model's by more than 2 s.e.",
            kind="sanity check",
            detail=f"robust accuracy {100 * m['robust']['robust_acc']:.1f}% against {100 * m['natural']['robust_acc']:.1f}%",
        )
    ]
