"""Targeted universal perturbations of a trained model, one per target class, from the store.

Part I's sections (gallery, locality, spatial invariance, scaling) all look at the same
perturbations: one delta per target class, solved on a shared base set of training images
with the batched solver (one group per target), then scored by its attack success rate on
the whole test split. The first section that asks computes them; the others load them.
"""

import torch

from . import attacks, store
from .data import Data
from .runtime import generator

# How Part I solves a universal perturbation, per profile (PAPER.md, "Definitions").
# step is a fraction of eps: the paper's 2.0 for an l2 ball of 6.0 is eps / 3; on CIFAR-10
# the learning-dynamics figure (I-F9) backs a smaller one.
SOLVER = {
    "smoke": {"base_size": 256, "epochs": 8, "step": 0.2, "batch_size": 128, "max_batch": 2048},
    "paper": {"base_size": 10000, "epochs": 10, "step": 0.2, "batch_size": 256, "max_batch": 4096},
}


def per_target(model, model_spec: dict, train_data: Data, test_data: Data, *, profile: str, norm: str,
               eps: float, targets=None, seed: int = 0, progress: bool = True, root=None, **solver) -> dict:
    """{"targets", "deltas" [T,C,H,W], "curves" [epochs,T], "asr" [T], "hardware"} for `model` (recipe
    `model_spec`); "hardware" names the machine that computed them.

    `solver` overrides the profile's SOLVER entries (base_size, epochs, step, batch_size).
    """
    if profile not in SOLVER:
        raise ValueError(f"profile must be one of {sorted(SOLVER)}, got {profile!r}")
    unknown = set(solver) - set(SOLVER[profile])
    if unknown:
        raise ValueError(f"unknown solver parameters {sorted(unknown)}; allowed: {sorted(SOLVER[profile])}")
    opts = {**SOLVER[profile], **solver}
    targets = list(range(len(train_data.classes))) if targets is None else [int(t) for t in targets]
    if not targets or not all(0 <= t < len(train_data.classes) for t in targets):
        raise ValueError(f"targets must be class indices in [0, {len(train_data.classes)}), got {targets}")
    if not 0 < opts["base_size"] <= len(train_data):
        raise ValueError(f"base_size must be in [1, {len(train_data)}], got {opts['base_size']}")
    params = {"model": model_spec, "test": test_data.identity, "norm": norm, "eps": eps,
              "targets": targets, "seed": seed, **opts}

    def compute(_workdir) -> dict:
        pick = torch.randperm(len(train_data), generator=generator(seed))[: opts["base_size"]]
        base = train_data.x[pick]
        deltas, curves = attacks.perturb(
            model, base.repeat(len(targets), 1, 1, 1), torch.tensor(targets), group_size=len(base), norm=norm,
            eps=eps, step_size=opts["step"] * eps, epochs=opts["epochs"], batch_size=opts["batch_size"],
            max_batch=opts["max_batch"], seed=seed, progress=progress,
        )
        asr = [attacks.asr(model, test_data.x, d, t) for d, t in zip(deltas, targets)]
        return {"targets": targets, "deltas": deltas.cpu(), "curves": curves.cpu(), "asr": asr, "base_index": pick}

    result = store.fetch("universal", params, compute, root)
    return {**result, "hardware": store.meta("universal", params, root)["hardware"]}

