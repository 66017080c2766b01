"""Section "Leakage" (I-T4): did robust features leak into D_univ?

A linear probe is trained on the frozen penultimate features of four models (natural, natural
with another seed, natural VGG16, robust) using D_univ's images and new labels, and tested on
the clean test set with the true labels. A probe can only generalise if the features it reads
respond to what D_univ's labels follow: the universal perturbations. If those carried robust
features, the robust model's probe would generalise too. The cyclic-label D_univ (t = y + 1)
bounds the leak from the other side: there the robust features of every image point to y, one
class before its label, so a probe that leans on them predicts y + 1 on the test set.
"""

import torch
import torch.nn.functional as F

from .. import store, zoo
from ..runtime import autocast, default_device, generator
from . import constructed, constructed_training

ROLES = ("natural", "natural_seed1", "vgg16", "robust")
DATASETS = ("univ", constructed.CYCLIC)
# Full-batch Adam on standardised features; weight decay keeps a probe on a few hundred
# examples from fitting noise.
PROBE = {"steps": 300, "lr": 0.01, "weight_decay": 1e-3}


@torch.no_grad()
def features(model, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Penultimate features of every image of x (uint8 or float [0, 1]), float32 on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
        with autocast(device):
            out.append(model.features(xb).float().cpu())
    return torch.cat(out)


def probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int, *,
          steps: int, lr: float, weight_decay: float, seed: int) -> dict:
    """A multinomial logistic regression on standardised features: its training accuracy and
    its predictions on the test features."""
    mean, std = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    a, b = (train_f - mean) / std, (test_f - mean) / std
    g = generator(seed)
    layer = torch.nn.Linear(a.shape[1], num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.01)
        layer.bias.zero_()
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(layer(a), train_y).backward()
        opt.step()
    with torch.no_grad():
        return {"train_acc": (layer(a).argmax(1) == train_y).float().mean().item(), "pred": layer(b).argmax(1)}


def run(profile: str = "smoke", *, construction: dict | None = None, probe_steps: int | None = None,
        grid: dict | None = None, train_epochs: int | None = None, model_width: int | None = None,
        workers: int | None = None, notebooks: bool = True, device=None, progress: bool = True,
        **overrides) -> dict:
    """Probe every model of ROLES on D_univ and the cyclic D_univ, and train fresh ResNet-18s on
    both over the grid (grid, train_epochs, model_width, workers, notebooks: see
    constructed_training.grid_results).

    construction: the Constructed section's parameters (None: its defaults). probe_steps: Adam
    steps of each probe (None: PROBE's). overrides: profile settings (data, width, seed, ...).
    Returns {"probes": {dataset: {role: {"train_acc", "test_acc", "shifted"}}}, "fresh": the
    grid's result, ...}: test_acc against the true labels, shifted the share predicted as y + 1
    (the cyclic label).
    """
    construction = dict(construction or {})
    plan = constructed.plan(profile, **construction, **overrides)
    steps = PROBE["steps"] if probe_steps is None else probe_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"probe_steps must be a positive integer, got {probe_steps!r}")
    constructed_training.points_for(profile, list(DATASETS), grid)  # checks the grid before any work
    cfg, device = plan["cfg"], device or default_device()
    sets = {name: constructed.dataset(profile, name, device=device, progress=progress, **construction, **overrides)
            for name in DATASETS}
    test_data = sets["univ"][1]
    train_data, _ = zoo.load_data(cfg["data"])
    specs = {role: zoo.recipe(cfg, role, train_data.identity) for role in ROLES}
    trained = {role: zoo.trained(spec, train_data, test_data, device=device, progress=progress)
               for role, spec in specs.items()}
    num_classes = len(test_data.classes)
    params = {"models": specs, "data": {name: s[0].identity for name, s in sets.items()}, "test": test_data.identity,
              "probe": {**PROBE, "steps": steps}, "seed": cfg["seed"]}

    def compute(_workdir) -> dict:
        probes = {name: {} for name in DATASETS}
        for role, (model, _) in trained.items():
            test_f = features(model, test_data.x)
            for name, (data, _, _) in sets.items():
                p = probe(features(model, data.x), data.y, test_f, num_classes, steps=steps, lr=PROBE["lr"],
                          weight_decay=PROBE["weight_decay"], seed=cfg["seed"])
                probes[name][role] = {"train_acc": p["train_acc"],
                                      "test_acc": (p["pred"] == test_data.y).float().mean().item(),
                                      "shifted": (p["pred"] == (test_data.y + 1) % num_classes).float().mean().item()}
        return {"probes": probes}

    result = store.fetch("leakage", params, compute)
    fresh = constructed_training.grid_results(
        profile, list(DATASETS), grid=grid, workers=workers, notebooks=notebooks, progress=progress,
        construction=construction, train_epochs=train_epochs, model_width=model_width, **overrides)
    hardware = {store.meta("leakage", params)["hardware"]} | {m["provenance"]["hardware"] for _, m in trained.values()}
    hardware |= fresh["hardware"]
    return {"cfg": cfg, "train": train_data, "test": test_data, "probes": result["probes"], "fresh": fresh,
            "sizes": {name: len(s[0]) for name, s in sets.items()},
            "clean_acc": {role: m["clean_acc"] for role, (_, m) in trained.items()},
            "chance": test_data.y.bincount().max().item() / len(test_data), "n_test": len(test_data),
            "hardware": hardware}
