"""Section "Models": train every model the book uses and measure it (table I-T7)."""

from .. import profiles, zoo
from ..runtime import default_device


def run(profile: str = "smoke", roles=zoo.ROLES, device=None, progress: bool = True, **overrides) -> dict:
    """Train (or load) the models named by `roles`; return their recipes and accuracies."""
    cfg = profiles.settings(profile, **overrides)
    unknown = set(roles) - set(zoo.ROLES)
    if unknown:
        raise ValueError(f"roles must be among {zoo.ROLES}, got {sorted(unknown)}")
    device = device or default_device()
    train_data, test_data = zoo.load_data(cfg["data"])
    metas = {}
    for role in roles:
        spec = zoo.recipe(cfg, role, train_data.identity)
        _, metas[role] = zoo.trained(spec, train_data, test_data, device=device, progress=progress)
    return {"cfg": cfg, "train": train_data, "test": test_data, "models": metas}
