"""Constructed data sets (after Ilyas et al. 2019): images whose only useful feature for their
new label is a perturbation toward it.

Every training image x (label y) gets a target t; a perturbation toward t is computed with the
natural model and (x + delta, t) is stored. D_adv uses a standard per-image perturbation; D_univ
one universal perturbation per base set of K images that share a target (base sets drawn at
random, from one source class, or with cyclic targets t = y + 1). All base sets of a variant are
solved at once by the batched solver `attacks.perturb`.

Only examples the model sends to t are kept, and then as many per (source class, target) cell
as the variant's scarcest target allows, so that the new labels stay uniform and independent of
the original ones (otherwise the filter would let real features back in, e.g. by keeping more
examples whose target equals their true class). Every variant of one catalogue is cut to the
same per-cell counts, so the data sets compare at equal size (D_adv subsampled to D_univ's).
"""

import torch

from . import attacks
from .data import Data
from .runtime import generator

KINDS = ("adv", "univ")
SOURCES = ("random", "class", "cyclic")


def variant(kind: str, norm: str, eps: float, k: int = 1, source: str = "random") -> dict:
    """A constructed data set's recipe, checked. kind 'adv' is the standard perturbation (k = 1)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if norm not in attacks.NORMS:
        raise ValueError(f"norm must be one of {attacks.NORMS}, got {norm!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (kind == "adv" and k != 1):
        raise ValueError(f"K (base-set size) must be a positive int, and 1 for kind 'adv'; got {k!r}")
    return {"kind": kind, "norm": norm, "eps": float(eps), "K": k, "source": source}


def assign_targets(y: torch.Tensor, num_classes: int, source: str, seed: int) -> torch.Tensor:
    """A target per image: cyclic t = (y + 1) mod C, else uniform and independent of y, balanced
    exactly (each class's images are spread round-robin over the targets in a random order)."""
    if source == "cyclic":
        return (y + 1) % num_classes
    g = generator(seed)
    t = torch.empty_like(y)
    for c in range(num_classes):
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        offset = int(torch.randint(num_classes, (1,), generator=g))
        t[idx] = (torch.arange(len(idx)) + offset) % num_classes
    return t


def base_sets(y: torch.Tensor, t: torch.Tensor, k: int, source: str, seed: int) -> list[torch.Tensor]:
    """Indices of every base set: the images of one target (and, for 'class' and 'cyclic', one
    source class), shuffled and split as evenly as possible into sets of about k images."""
    g = generator(seed + 1)
    key = t if source == "random" else t * (int(y.max()) + 1) + y
    sets = []
    for cell in key.unique():
        idx = (key == cell).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        sets += list(torch.tensor_split(idx, max(1, round(len(idx) / k))))
    return sets


def build(model, data: Data, spec: dict, *, solver: dict, seed: int = 0, progress: bool = True) -> dict:
    """Perturb every image of `data` toward its target as `spec` says, with `model`.

    solver: {"steps", "step", "max_batch"} of the universal perturbations (step as a fraction
    of eps; D_adv uses the standard perturbation, step eps/3 for 10 steps; max_batch caps the
    images in one forward pass, but a base set always goes in whole: its step is full-batch).
    Returns {"t", "x" (the perturbed images clip(x + delta), float16), "fooled" (C(x) == t,
    checked on the stored images), "base_size" (mean base-set size), "deltas" (the
    perturbation of one image per target, toward "delta_targets")}.
    """
    t = assign_targets(data.y, len(data.classes), spec["source"], seed)
    delta = torch.empty(data.x.shape)
    common = {"norm": spec["norm"], "eps": spec["eps"], "seed": seed, "progress": progress}
    if spec["kind"] == "adv":
        delta[:] = attacks.perturb(model, data.x, t, group_size=1, step_size=spec["eps"] / 3, epochs=10,
                                   max_batch=solver["max_batch"], **common)[0]
        sizes = [1]
    else:
        sets = base_sets(data.y, t, spec["K"], spec["source"], seed)
        sizes = [len(s) for s in sets]
        for size in sorted(set(sizes)):  # the solver takes groups of one size at a time
            index = torch.cat([s for s in sets if len(s) == size])
            groups, _ = attacks.perturb(model, data.x[index], t[index[::size]], group_size=size,
                                        step_size=solver["step"] * spec["eps"], epochs=solver["steps"],
                                        max_batch=max(solver["max_batch"], size), **common)
            delta[index] = groups.repeat_interleave(size, 0).to(delta.device)
    x = (data.x.float() / 255 + delta).clamp(0, 1).half()
    first = torch.stack([(t == c).nonzero()[0, 0] for c in t.unique()])  # one image per target
    return {"t": t, "x": x, "fooled": attacks.predict(model, x).cpu() == t, "base_size": sum(sizes) / len(sizes),
            "deltas": delta[first], "delta_targets": t[first]}


def cell_table(y: torch.Tensor, t: torch.Tensor, fooled: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] fooled examples per (source class y, target t)."""
    table = torch.zeros(num_classes, num_classes, dtype=torch.long)
    table.index_put_((y[fooled], t[fooled]), torch.ones(int(fooled.sum()), dtype=torch.long), accumulate=True)
    return table


def cut(tables: list[torch.Tensor], cyclic: bool = False) -> torch.Tensor:
    """[C, C] examples to keep per (y, t) cell, the same for every table given: each class keeps,
    for every target, as many as its scarcest cell allows, so labels are uniform and independent
    of y. A target that some class never reaches is dropped from the labels (a table of real
    models reaches all). Cyclic tables have one target per class: every class keeps the same
    number (classes that reach nothing are dropped)."""
    table = torch.stack(tables).amin(0)
    plan = torch.zeros_like(table)
    if cyclic:
        reached = table.sum(1) > 0
        if reached.any():
            rows = reached.nonzero().squeeze(1)
            targets = table[rows].argmax(1)
            plan[rows, targets] = table[rows, targets].min()
        return plan
    targets = table.amin(0) > 0
    if targets.any():
        plan[:, targets] = table[:, targets].amin(1, keepdim=True)
    return plan


def select(y: torch.Tensor, t: torch.Tensor, fooled: torch.Tensor, plan: torch.Tensor, seed: int) -> torch.Tensor:
    """Indices of plan[y, t] fooled examples of every (y, t) cell, drawn at random."""
    g = generator(seed + 2)
    keep = []
    for c, target in plan.nonzero().tolist():
        idx = ((y == c) & (t == target) & fooled).nonzero().squeeze(1)
        keep.append(idx[torch.randperm(len(idx), generator=g)[: int(plan[c, target])]])
    return torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.long)


def dataset(data: Data, raw: dict, index: torch.Tensor, name: str) -> Data:
    """The constructed data set: float16 images clip(x + delta) with the new labels t; the
    original labels ride along as fine_y (for the label-balance report, never for training)."""
    return Data(x=raw["x"][index], y=raw["t"][index], classes=data.classes, identity=f"{data.identity}:{name}",
                fine_y=data.y[index], fine_classes=data.classes)


def balance_report(y: torch.Tensor, t: torch.Tensor, num_classes: int) -> dict:
    """How uniform the new labels are and how independent of the old: label counts, the
    (source, target) table, and the largest gap of P(t | y) from 1/C."""
    table = torch.zeros(num_classes, num_classes, dtype=torch.long)
    table.index_put_((y, t), torch.ones(len(y), dtype=torch.long), accumulate=True)
    present, labels = table.sum(1) > 0, table.sum(0) > 0  # classes and labels left after the cut
    rows = table[present][:, labels].float() / table[present].sum(1, keepdim=True)
    gap = float((rows - 1 / int(labels.sum())).abs().max()) if present.any() else 0.0
    return {"label_counts": table.sum(0), "table": table, "max_gap": gap}
