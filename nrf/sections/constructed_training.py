"""One sweep point (not a page of the book): a fresh ResNet-18 trained on one constructed data set
with one setting of the hyperparameter grid, tested on the original, clean test set.

    nrf sweep constructed_training --grid dataset=adv,univ --grid train_lr=0.01,0.05,0.1 -p profile paper

runs it once per point, points in parallel. Its training run is the same store artifact
(nrf.grid.train) as the one the Generalisation, Interpolation and Leakage pages train for that
data set and setting, so a sweep fills the store for them and they train only what is missing.
Its options are theirs, with one point (`dataset`, `train_lr`, `train_batch_size`, `decay`) in
place of the grid's lists, and `train_seed` for the fresh model's seed (the pages train seeds
seed, seed + 1, ...; `seed` itself also seeds the catalogue, so sweeping it would build
another); `lr` and `batch_size` are the natural model's (options.MODELS).

    nrf sweep constructed_training -p profile medium --grid dataset=adv,univ --grid train_seed=0,1,2
"""

from .. import claims, constructed, grid, options, records
from ..options import Option

OPTIONS = (
    options.MODELS
    + constructed.OPTIONS
    + grid.TRAINING
    + [
        Option(
            "dataset",
            "univ",
            "the constructed data set: a name of the catalogue (adv, adv-half, univ, adv-linf, "
            "univ-linf, univ-K<K>, univ-class, univ-cyclic)",
            kind="str",
        ),
        Option("train_lr", 0.1, "SGD learning rate of the fresh ResNet-18", low=1e-12),
        Option("train_batch_size", 128, "its batch size", kind="int", low=1),
        Option(
            "decay", "none", "its schedule: none, or step (one x0.1 drop half-way)", kind="str", choices=grid.DECAYS
        ),
        Option(
            "train_seed",
            None,
            "its seed (null: seed); a page trains seeds seed, seed + 1, ... (seeds, seeds_main)",
            kind="int",
            low=0,
            optional=True,
        ),
    ]
)


def run(cfg: dict) -> dict:
    """Train on constructed data set `dataset` with one setting and test: the setting, the data
    set's size, the history, final and best-epoch test accuracy, the chance level."""
    point = grid.setting(cfg["train_lr"], cfg["train_batch_size"], cfg["decay"], cfg["train_epochs"])
    cat = constructed.Catalogue(cfg)
    cat.check(cfg["dataset"])  # the name, before any training
    cat.build()
    seed = cfg["seed"] if cfg["train_seed"] is None else cfg["train_seed"]
    out = grid.train(cat, cfg["dataset"], point, cfg["model_width"], seed)
    results = {
        **out,
        "seed": seed,
        "chance": cat.chance,
        "n_test": len(cat.test),
        "classes": cat.classes,
        "variant": cat.names[cfg["dataset"]],
    }
    return {"results": results, "data": records.data_note(cat.train, cat.test)}


def verdicts(rec: dict) -> list[claims.Verdict]:
    """A sweep point tests no claim: the pages that read it back do."""
    return []
