"""Section "Generalisation" (I-T3, I-T8): fresh ResNet-18s trained on D_adv and D_univ.

Every data set of DATASETS is trained on over the hyperparameter grid (constructed_training),
each point a sweep notebook or, without the notebook stack, a run in this process; the page
reports each data set's best setting against the clean test set.
"""

from . import constructed_training

DATASETS = ["adv", "adv-half", "univ", "adv-linf", "univ-linf"]


def run(profile: str = "smoke", *, construction: dict | None = None, grid: dict | None = None,
        train_epochs: int | None = None, model_width: int | None = None, workers: int | None = None,
        notebooks: bool = True, progress: bool = True, **overrides) -> dict:
    """The grid over DATASETS (see constructed_training.grid_results for the parameters and result)."""
    return constructed_training.grid_results(
        profile, DATASETS, grid=grid, workers=workers, notebooks=notebooks, progress=progress,
        construction=construction, train_epochs=train_epochs, model_width=model_width, **overrides)
