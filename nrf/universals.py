"""Targeted universal perturbations of a trained model, one per target class, from the store.

Part I's sections (gallery, locality, spatial invariance, scaling, transfer) all look at the
same perturbations: one delta per target class, solved on a shared base set of training images
with the batched solver (one group per target), then scored by its attack success rate on the
whole test split. The first section that asks computes them; the others load them. The solver's
options are `options.UNIVERSAL`.
"""

import torch

from . import attacks, store
from .data import Data
from .runtime import device_batch, device_of, generator


def solver(cfg: dict, n_train: int) -> dict:
    """The solver settings of a section's resolved options (options.UNIVERSAL), checked against
    the `n_train` training images before anything trains."""
    if cfg["base_size"] > n_train:
        raise ValueError(f"option base_size must be at most the {n_train} training images, got {cfg['base_size']}")
    return {
        "base_size": cfg["base_size"],
        "epochs": cfg["solver_epochs"],
        "step": cfg["solver_step"],
        "batch_size": cfg["solver_batch"],
    }


def per_target(
    model,
    model_spec: dict,
    train_data: Data,
    test_data: Data,
    *,
    norm: str,
    eps: float,
    targets,
    seed: int,
    base_size: int,
    epochs: int,
    step: float,
    batch_size: int,
) -> dict:
    """{"targets", "deltas" [T,C,H,W], "curves" [epochs,T], "asr" [T], "base_index"} for `model`
    (recipe `model_spec`): one perturbation per target class index of `targets`, solved with
    `step` * eps steps on a seeded base set of `base_size` training images."""
    targets = [int(t) for t in targets]
    if not targets or not all(0 <= t < len(train_data.classes) for t in targets):
        raise ValueError(f"targets must be class indices in [0, {len(train_data.classes)}), got {targets}")
    if not 0 < base_size <= len(train_data):
        raise ValueError(f"option base_size must be in [1, {len(train_data)}], got {base_size}")
    params = {
        "model": model_spec,
        "test": test_data.identity,
        "norm": norm,
        "eps": eps,
        "targets": targets,
        "seed": seed,
        "base_size": base_size,
        "epochs": epochs,
        "step": step,
        "batch_size": batch_size,
    }

    def compute(_workdir) -> dict:
        pick = torch.randperm(len(train_data), generator=generator(seed))[:base_size]
        base = train_data.x[pick]
        deltas, curves = attacks.perturb(
            model,
            base.repeat(len(targets), 1, 1, 1),
            torch.tensor(targets),
            group_size=len(base),
            norm=norm,
            eps=eps,
            step_size=step * eps,
            epochs=epochs,
            batch_size=batch_size,
            max_batch=max(batch_size, device_batch(device_of(model))),
            seed=seed,
            desc=f"universal perturbations, {norm}",
        )
        asr = [attacks.asr(model, test_data.x, d, t) for d, t in zip(deltas, targets)]
        return {"targets": targets, "deltas": deltas.cpu(), "curves": curves.cpu(), "asr": asr, "base_index": pick}

    return store.fetch("universal", params, compute)
