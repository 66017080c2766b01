"""Section "Interpolating universality" (I-T1, I-T5, I-F7, I-T2): D_univ at every base-set size K.

The K rows of the catalogue (K = 1 is D_adv), the single-class variant and D_adv at eps/2 (for
the budget comparison I-T5) are trained on over the grid, exactly as in the Generalisation
section, whose points they share.
"""

from . import constructed, constructed_training


def datasets(profile: str, construction: dict | None = None, **overrides) -> dict:
    """{K: catalogue name} of the K-interpolation, and the full list of data sets trained on."""
    opts = constructed.plan(profile, **(construction or {}), **overrides)["opts"]
    rows = {k: constructed.k_name(k, opts["K_univ"]) for k in opts["Ks"]}
    return {"K": rows, "all": list(dict.fromkeys([*rows.values(), "univ-class", "adv-half"])),
            "restrict_K": opts["restrict_K"]}


def run(profile: str = "smoke", *, construction: dict | None = None, grid: dict | None = None,
        train_epochs: int | None = None, model_width: int | None = None, workers: int | None = None,
        notebooks: bool = True, progress: bool = True, **overrides) -> dict:
    """The grid over the K rows and the restricted variants: Generalisation's result plus
    "K" ({K: data set name}) and "restrict_K"."""
    names = datasets(profile, construction, **overrides)
    out = constructed_training.grid_results(
        profile, names["all"], grid=grid, workers=workers, notebooks=notebooks, progress=progress,
        construction=construction, train_epochs=train_epochs, model_width=model_width, **overrides)
    return {**out, "K": names["K"], "restrict_K": names["restrict_K"]}
