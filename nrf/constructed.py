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
examples whose target equals their true class); a chi-square test of independence checks it on
what was kept. An image the model does not send to its target is tried toward another, chosen
for its class's shortest cells (`draws`), so the scarcest cell bounds less. The variants one page
compares (one norm: D_adv, D_univ, the K rows) are cut to the same per-cell counts, so they
compare at equal size (D_adv subsampled to D_univ's, as in the paper); the cyclic variant is cut
alone, and so is the other norm's pair (`group`).

`Catalogue(cfg)` is the whole catalogue the book trains on, for a section's options (`OPTIONS`):
built once per run, every variant from the store or computed, and handed out one at a time.
"""

import math

import torch

from . import attacks, claims, store, zoo
from .data import Data, to_float
from .options import DEFAULT_EPS, Option
from .runtime import device_batch, device_of, generator

# The construction's options, shared by every section that trains on the catalogue. Smoke and
# medium perturb with 3x and 2x the budget: their narrow, briefly trained models' universal
# perturbations at eps fool too few images in the hard (class, target) cells for the exact
# balancing to keep a usable data set (medium, measured on 5,000 images: eps keeps 2% of them,
# 2 eps 24%); the record carries what D_univ at eps itself would keep (BUDGET). Medium perturbs
# all 50,000 training images (issue 24: at 10,000 the cut kept 2,260 per data set).
OPTIONS = [
    Option(
        "n_source",
        {"smoke": 1500, "medium": None, "paper": None},
        "training images perturbed, a seeded random subset (null: all of them)",
        kind="int",
        low=1,
        optional=True,
    ),
    Option(
        "Ks",
        {"smoke": [1, 2, 16, 256], "medium": [1, 2, 16, 256], "paper": [1, 2, 4, 8, 16, 32, 256]},
        "base-set sizes of the K-interpolation (1: D_adv, the standard perturbation)",
        kind="ints",
        low=1,
    ),
    Option("K_univ", 256, "base-set size of D_univ (the paper's batch)", kind="int", low=1),
    Option(
        "restrict_K",
        {"smoke": 16, "medium": 256, "paper": 256},
        "base-set size of the single-class variant, compared with random base sets of that size (one of Ks)",
        kind="int",
        low=1,
    ),
    Option("l2_eps", DEFAULT_EPS["l2"], "l2 budget of the constructed data sets (the paper's CIFAR-10 1.0)", low=1e-12),
    Option("linf_eps", DEFAULT_EPS["linf"], "budget of their linf variants", low=1e-12),
    Option(
        "eps_scale",
        {"smoke": 3.0, "medium": 2.0, "paper": 1.0},
        "every budget is eps_scale times the above (smoke, "
        "medium: their narrow models fool too few images at eps for the balanced cut)",
        low=1e-12,
    ),
    Option(
        "solver_epochs",
        {"smoke": 5, "medium": 15, "paper": 20},
        "full-batch steps of each universal perturbation (a base set goes in whole); medium: about twice "
        "where I-F9's medium curve for full-batch base sets (K = 100, step 0.2) levels (step 8)",
        kind="int",
        low=1,
    ),
    Option(
        "draws",
        {"smoke": 2, "medium": 3, "paper": 3},
        "targets tried per image: one the model is not sent to gets another, in its class's shortest "
        "(class, target) cells, up to this many (1: one target per image; not for cyclic labels)",
        kind="int",
        low=1,
    ),
    Option("solver_step", {"smoke": 0.3, "medium": 0.2, "paper": 0.2}, "their step, as a fraction of eps", low=1e-12),
]
CYCLIC = "univ-cyclic"  # leakage bound: cut to its own size, not the common one
BUDGET = "univ-budget"  # D_univ at the threat model's own budget when eps_scale is not 1: only reported
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


def _perturb(model, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, spec: dict, *, steps, step, seed):
    """The perturbation of every image of x toward its target t as `spec` says: (delta [N, C, H,
    W], the base-set sizes, the solver's curve: the share of images sent to their target during
    each step, read off its own forward passes)."""
    delta = torch.empty(x.shape)
    max_batch = device_batch(device_of(model))
    common = {
        "norm": spec["norm"],
        "eps": spec["eps"],
        "seed": seed,
        "desc": f"constructed {spec['kind']} {spec['norm']}, K={spec['K']}",
    }
    if spec["kind"] == "adv":
        delta[:], curve = attacks.perturb(
            model, x, t, group_size=1, step_size=spec["eps"] / 3, epochs=10, max_batch=max_batch, **common
        )
        return delta, [1], curve.float().mean(1).cpu()
    sets = base_sets(y, t, spec["K"], spec["source"], seed)
    sizes, curve = [len(s) for s in sets], torch.zeros(steps)
    for size in sorted(set(sizes)):  # the solver takes groups of one size at a time
        index = torch.cat([s for s in sets if len(s) == size])
        groups, hits = attacks.perturb(
            model,
            x[index],
            t[index[::size]],
            group_size=size,
            step_size=step * spec["eps"],
            epochs=steps,
            max_batch=max(max_batch, size),
            **common,
        )
        delta[index] = groups.repeat_interleave(size, 0).to(delta.device)
        curve += hits.float().sum(1).cpu() * size / len(x)
    return delta, sizes, curve


def retarget(y: torch.Tensor, t: torch.Tensor, fooled: torch.Tensor, tried: torch.Tensor, seed: int) -> torch.Tensor:
    """New targets for the images not sent to theirs (~fooled), others keep t. Per class, in a
    random order, each image goes to the target (other than the one it failed) with the fewest
    fooled examples expected so far: those fooled plus the tries given times the cell's success
    rate ((fooled + 1) / (tried + 2)). So the tries fill each class's shortest cells, the ones
    that bound what the balanced cut keeps. tried: [C, C] images tried per (y, t) cell."""
    num_classes = len(tried)
    have = cell_table(y, t, fooled, num_classes).double()
    rate = (have + 1) / (tried.double() + 2)
    g, new = generator(seed), t.clone()
    for c in range(num_classes):
        idx = ((y == c) & ~fooled).nonzero().squeeze(1)
        expected = have[c].tolist()
        for i in idx[torch.randperm(len(idx), generator=g)].tolist():
            k = min((j for j in range(num_classes) if j != int(t[i])), key=expected.__getitem__)
            new[i] = k
            expected[k] += float(rate[c, k])
    return new


def build(model, data: Data, spec: dict, *, steps: int, step: float, draws: int = 1, seed: int = 0) -> dict:
    """Perturb every image of `data` toward its target as `spec` says, with `model`.

    steps, step: the universal perturbations' full-batch steps and step size (a fraction of
    eps); D_adv uses the standard perturbation, step eps/3 for 10 steps. A forward pass holds
    at most runtime.device_batch images, but a base set always goes in whole (its step is
    full-batch). draws: an image the model does not send to its target is tried again toward
    another (retarget), up to `draws` targets in all (cyclic targets are fixed: one draw).
    Returns {"t" (each image's last target), "x" (the perturbed images clip(x + delta), float16),
    "fooled" (C(x) == t, checked on the stored images), "fooled_first" (the share fooled by the
    first draw), "curve" (the first draw's solver curve), "base_size" (mean base-set size),
    "deltas" (the perturbation of one image per target, toward "delta_targets")}.
    """
    num_classes = len(data.classes)
    t = assign_targets(data.y, num_classes, spec["source"], seed)
    delta, sizes, curve = _perturb(model, data.x, data.y, t, spec, steps=steps, step=step, seed=seed)
    x = (to_float(data.x) + delta).clamp(0, 1).half()
    fooled = attacks.predict(model, x).cpu() == t
    fooled_first = fooled.float().mean().item()
    tried = cell_table(data.y, t, torch.ones_like(fooled), num_classes)
    for draw in range(1, 1 if spec["source"] == "cyclic" else draws):
        miss = (~fooled).nonzero().squeeze(1)
        if not len(miss):
            break
        new = retarget(data.y, t, fooled, tried, seed + draw)[miss]
        d, more, _ = _perturb(model, data.x[miss], data.y[miss], new, spec, steps=steps, step=step, seed=seed + draw)
        tried += cell_table(data.y[miss], new, torch.ones(len(miss), dtype=torch.bool), num_classes)
        t[miss], delta[miss], sizes = new, d, sizes + more
        x[miss] = (to_float(data.x[miss]) + d).clamp(0, 1).half()
        fooled[miss] = attacks.predict(model, x[miss]).cpu() == new
    first = torch.stack([(t == c).nonzero()[0, 0] for c in t.unique()])  # one image per target
    return {
        "t": t,
        "x": x,
        "fooled": fooled,
        "fooled_first": fooled_first,
        "curve": curve,
        "base_size": sum(sizes) / len(sizes),
        "deltas": delta[first],
        "delta_targets": t[first],
    }


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


def cuts(tables: dict, names: dict) -> dict:
    """Every variant's cut ({name: [C, C] kept per (y, t)}) from its fooled-cell table ({name:
    cell_table}): the variants of one group (see group, `names` their recipes) share one cut."""
    members = {}
    for name in tables:
        members.setdefault(group(name, names[name]), []).append(name)
    plans = {}
    for key, group_names in members.items():
        plan = cut([tables[n] for n in group_names], cyclic=key == CYCLIC)
        plans |= {n: plan for n in group_names}
    return plans


def select(y: torch.Tensor, t: torch.Tensor, fooled: torch.Tensor, plan: torch.Tensor, seed: int) -> torch.Tensor:
    """Indices of plan[y, t] fooled examples of every (y, t) cell, drawn at random."""
    g = generator(seed + 2)
    keep = []
    for c, target in plan.nonzero().tolist():
        idx = ((y == c) & (t == target) & fooled).nonzero().squeeze(1)
        keep.append(idx[torch.randperm(len(idx), generator=g)[: int(plan[c, target])]])
    return torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.long)


def balance_report(y: torch.Tensor, t: torch.Tensor, num_classes: int) -> dict:
    """How uniform the new labels are and how independent of the old: label counts, the
    (source, target) table, the largest gap of P(t | y) from 1/C, and Pearson's chi-square test
    of independence of t from y ("chi2", "df", "p_value"; the p-value by claims.chi2_z's normal
    approximation) over the classes and labels left."""
    table = torch.zeros(num_classes, num_classes, dtype=torch.long)
    table.index_put_((y, t), torch.ones(len(y), dtype=torch.long), accumulate=True)
    present, labels = table.sum(1) > 0, table.sum(0) > 0  # classes and labels left after the cut
    kept = table[present][:, labels].double()
    rows = kept / kept.sum(1, keepdim=True)
    gap = float((rows - 1 / int(labels.sum())).abs().max()) if present.any() else 0.0
    df = (kept.shape[0] - 1) * (kept.shape[1] - 1)
    if df > 0:
        expected = kept.sum(1, keepdim=True) * kept.sum(0, keepdim=True) / kept.sum()
        chi2 = float(((kept - expected) ** 2 / expected).sum())
        p_value = 0.5 * math.erfc(claims.chi2_z(chi2, df) / math.sqrt(2))
    else:
        chi2, p_value = 0.0, 1.0
    return {"label_counts": table.sum(0), "table": table, "max_gap": gap, "chi2": chi2, "df": df, "p_value": p_value}


# ---- The catalogue of the book --------------------------------------------------------------------


def k_name(k: int, k_univ: int) -> str:
    """The catalogue name of the K-interpolation row K."""
    return "adv" if k == 1 else "univ" if k == k_univ else f"univ-K{k}"


def variants(cfg: dict) -> dict:
    """Every variant the book trains on, by name, for a section's resolved options (OPTIONS):
    D_adv at eps and eps/2, D_univ, both in linf, the K-interpolation, single-class base sets and
    cyclic labels; and, when eps_scale is not 1, D_univ at the unscaled budget (BUDGET: built and
    cut to show what it would keep, trained on by no page). Raises ValueError naming a bad option."""
    ks = cfg["Ks"]
    if len(set(ks)) != len(ks):
        raise ValueError(f"option Ks must be distinct base-set sizes, got {ks!r}")
    if cfg["restrict_K"] not in ks:
        raise ValueError(
            f"option restrict_K must be one of Ks {sorted(ks)} (it is compared with random base sets "
            f"of that size), got {cfg['restrict_K']!r}"
        )
    eps, linf_eps, k_univ = cfg["l2_eps"] * cfg["eps_scale"], cfg["linf_eps"] * cfg["eps_scale"], cfg["K_univ"]
    names = {
        "adv": variant("adv", "l2", eps),
        "adv-half": variant("adv", "l2", eps / 2),
        "univ": variant("univ", "l2", eps, k_univ),
        "adv-linf": variant("adv", "linf", linf_eps),
        "univ-linf": variant("univ", "linf", linf_eps, k_univ),
    }
    names |= {k_name(k, k_univ): variant("univ", "l2", eps, k) for k in sorted(ks) if k not in (1, k_univ)}
    names["univ-class"] = variant("univ", "l2", eps, cfg["restrict_K"], "class")
    names[CYCLIC] = variant("univ", "l2", eps, k_univ, "cyclic")
    if cfg["eps_scale"] != 1:
        names[BUDGET] = variant("univ", "l2", cfg["l2_eps"], k_univ)
    return names


def group(name: str, spec: dict) -> str:
    """The variants cut to common counts together: those of one norm, which the pages compare
    with each other (D_adv with D_univ, the K rows, D_adv at eps/2); the cyclic variant and the
    budget probe (BUDGET) alone. So the hardest cell of one norm does not shrink the other's."""
    return name if name in (CYCLIC, BUDGET) else spec["norm"]


def subset(train_data: Data, n_source: int | None, seed: int) -> Data:
    """The training images that get perturbed: all (None), or a seeded random subset."""
    if n_source is None:
        return train_data
    if n_source > len(train_data):
        raise ValueError(f"option n_source must be at most the {len(train_data)} training images, got {n_source}")
    pick = torch.randperm(len(train_data), generator=generator(seed))[:n_source].sort().values
    return Data(
        x=train_data.x[pick],
        y=train_data.y[pick],
        classes=train_data.classes,
        identity=f"{train_data.identity}[{n_source}@{seed}]",
    )


class Catalogue:
    """Every constructed data set of the book, for a section's resolved options (OPTIONS and
    options.MODELS: the natural model that makes the perturbations).

        cat = Catalogue(cfg)        # loads the data, checks the options: no training yet
        cat.build()                 # the natural model, every variant and the cut of each group
        cat.stats["univ"], cat.size("univ"), cat.identity("univ"), cat.dataset("univ")

    Everything expensive comes from the store. `dataset` loads one variant's images at a time.
    """

    def __init__(self, cfg: dict):
        self.names = variants(cfg)
        self.seed = cfg["seed"]
        self.solver = {"steps": cfg["solver_epochs"], "step": cfg["solver_step"], "draws": cfg["draws"]}
        self.train, self.test = zoo.load_data(cfg["data"])
        self.source = subset(self.train, cfg["n_source"], self.seed)
        self.spec = zoo.recipe(cfg, "natural", self.train.identity)
        self.model = self.meta = None
        self.stats, self.common, self.examples = {}, None, {}
        self._loaded = (None, None)

    @property
    def classes(self) -> list[str]:
        return list(self.train.classes)

    @property
    def chance(self) -> float:
        """The accuracy of a model that learned nothing: the largest class share of the test set."""
        return self.test.y.bincount().max().item() / len(self.test)

    def build(self) -> "Catalogue":
        """Train (or load) the natural model, build (or load) every variant and cut the variants of
        each group (see group) to common per-(class, target) counts; per variant: what was built,
        the share fooled (overall, by the first draw, per target), the solver's curve, what was
        kept ("cells": [C, C] kept per (y, t)), the label balance of what was kept and its test of
        independence, and a few examples. "common": {group: its cut}."""
        self.model, self.meta = zoo.trained(self.spec, self.train, self.test)
        source, seed, num_classes = self.source, self.seed, len(self.train.classes)

        def compute(_workdir) -> dict:
            raws = {name: self._raw(name) for name in self.names}
            tables = {name: cell_table(source.y, r["t"], r["fooled"], num_classes) for name, r in raws.items()}
            plans = cuts(tables, self.names)
            common = {group(name, self.names[name]): plan for name, plan in plans.items()}
            stats, examples = {}, {}
            for name, r in raws.items():
                cells = plans[name]
                index = select(source.y, r["t"], r["fooled"], cells, seed)
                by_target = torch.stack([r["fooled"][r["t"] == c].float().mean() for c in range(num_classes)])
                stats[name] = {
                    "variant": self.names[name],
                    "built": len(r["t"]),
                    "fooled": r["fooled"].float().mean().item(),
                    "fooled_first": r["fooled_first"],
                    "fooled_by_target": by_target,
                    "solver_curve": r["curve"],
                    "kept": len(index),
                    "base_size": r["base_size"],
                    "cells": cells,
                    **balance_report(source.y[index], r["t"][index], num_classes),
                }
                if name == CYCLIC:  # its labels depend on y by design
                    stats[name] |= {"max_gap": None, "chi2": None, "p_value": None}
                first = index[:8]
                examples[name] = {
                    "x": source.x[first],
                    "perturbed": r["x"][first],
                    "t": r["t"][first],
                    "deltas": r["deltas"],
                    "delta_targets": r["delta_targets"],
                }
            return {"stats": stats, "common": common, "examples": examples}

        key = {"model": self.spec, "source": source.identity, "names": self.names, "solver": self.solver, "seed": seed}
        summary = store.fetch("constructed", key, compute)
        self.stats, self.common, self.examples = summary["stats"], summary["common"], summary["examples"]
        return self

    def _raw_params(self, name: str) -> dict:
        v = self.names[name]
        return {
            "model": self.spec,
            "source": self.source.identity,
            "variant": v,
            "solver": self.solver if v["kind"] == "univ" else {"draws": self.solver["draws"]},
            "seed": self.seed,
        }

    def _raw(self, name: str) -> dict:
        """One variant's perturbed images, built or loaded from the store."""
        return store.fetch(
            "constructed-raw",
            self._raw_params(name),
            lambda _w: build(self.model, self.source, self.names[name], **self.solver, seed=self.seed),
        )

    def check(self, name: str) -> None:
        """A variant of the catalogue that keeps at least one example, or ValueError."""
        if name not in self.names:
            raise ValueError(f"option dataset must be one of {sorted(self.names)}, got {name!r}")
        if self.stats and not self.size(name):
            raise ValueError(
                f"constructed data set {name!r} is empty: no target was reached in every class; "
                "raise eps_scale or n_source, or train the natural model longer"
            )

    def size(self, name: str) -> int:
        return int(self.stats[name]["cells"].sum())

    def identity(self, name: str) -> str:
        """What a model trained on variant `name` was trained on, without loading its images."""
        raw = store.key("constructed-raw", self._raw_params(name))
        return f"{self.source.identity}:{name}:{raw}:{store.digest(self.stats[name]['cells'])}"

    def dataset(self, name: str) -> Data:
        """Variant `name` as kept by the cut: float16 images, new labels (the last one asked for
        stays loaded)."""
        self.check(name)
        if self._loaded[0] != name:
            raw = self._raw(name)
            index = select(self.source.y, raw["t"], raw["fooled"], self.stats[name]["cells"], self.seed)
            data = Data(
                x=raw["x"][index],
                y=raw["t"][index],
                classes=self.source.classes,
                identity=self.identity(name),
                fine_y=self.source.y[index],
                fine_classes=self.source.classes,
            )
            self._loaded = (name, data)
        return self._loaded[1]


def budget_note(eps_scale: float) -> str:
    """One sentence for the pages that train on the catalogue: at which budget it was made."""
    if eps_scale == 1:
        return "The perturbations were made at the threat model's budget."
    return (
        f"The perturbations were made at {eps_scale:g} times the threat model's budget (this profile's "
        "eps_scale; the Constructed data sets page says why)."
    )
