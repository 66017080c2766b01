"""The two profiles every section runs under, and the checks on a section's parameters.

`smoke`: the embedded sample of real CIFAR-10, narrow models, few epochs: minutes on 2 CPU
cores, so CI computes it from scratch. `paper`: the paper's settings (PAPER.md) on full
CIFAR-10, for a GPU. A notebook passes its papermill parameters as overrides:

    cfg = profiles.settings("smoke", width=32, epochs=5)
"""

import copy

PROFILES = {
    "smoke": {
        "data": "sample",
        "width": 16,
        "epochs": 15,
        "lr": 0.05,
        "batch_size": 128,
        "milestones": [11],
        "weight_decay": 5e-4,
        "robust_epochs": 8,
        "norm": "l2",
        "eps": 1.0,  # CIFAR-10 l2 threat model of the paper
        "adv_steps": 3,  # PGD adversarial training: 3 steps of 2/3 eps
        "eval_steps": 10,  # robust accuracy: PGD at the training eps
        "seed": 0,
    },
    "paper": {
        "data": "cifar10",
        "width": 64,
        "epochs": 150,
        "lr": 0.1,
        "batch_size": 128,
        "milestones": [50, 100],
        "weight_decay": 5e-4,
        "robust_epochs": 150,
        "norm": "l2",
        "eps": 1.0,
        "adv_steps": 3,
        "eval_steps": 20,
        "seed": 0,
    },
}

NORMS = ("l2", "linf")


def settings(profile: str, **overrides) -> dict:
    """The profile's settings with `overrides` applied (None means: keep the profile's value)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    cfg = copy.deepcopy(PROFILES[profile])
    for name, value in overrides.items():
        if name not in cfg:
            raise ValueError(f"unknown parameter {name!r}; allowed: {sorted(cfg)}")
        if value is not None:
            cfg[name] = value
    check(cfg)
    cfg["profile"] = profile
    return cfg


def check(cfg: dict) -> None:
    """Reject bad values early, naming the parameter and what is allowed."""
    for name in ("width", "epochs", "batch_size", "robust_epochs", "adv_steps", "eval_steps"):
        if not isinstance(cfg[name], int) or cfg[name] <= 0:
            raise ValueError(f"{name} must be a positive integer, got {cfg[name]!r}")
    for name in ("lr", "eps"):
        if not cfg[name] > 0:
            raise ValueError(f"{name} must be positive, got {cfg[name]!r}")
    if cfg["norm"] not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {cfg['norm']!r}")
    if not isinstance(cfg["seed"], int):
        raise ValueError(f"seed must be an integer, got {cfg['seed']!r}")
    for m in cfg["milestones"]:
        if not 0 < m < max(cfg["epochs"], cfg["robust_epochs"]):
            raise ValueError(f"milestones must lie inside (0, epochs), got {cfg['milestones']!r}")


def positive_int(name: str, value, most: int | None = None) -> int:
    """A section parameter that must be a positive int (at most `most`), checked early."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        raise ValueError(f"{name} must be a positive integer{f' at most {most}' if most else ''}, got {value!r}")
    return value
