"""Section "Constructed data sets": D_adv, D_univ and their variants, built once for the
sections that train on them (Generalisation, Interpolation, Leakage).

A catalogue names every variant the book uses (`catalogue`); `run` builds them all with the
natural ResNet-18, keeps the fooled examples, cuts every variant but the cyclic one to the same
per-(source class, target) counts and reports what was kept. `dataset` hands one variant to a
training run, loading only that variant's images.
"""

import torch

from .. import constructed, profiles, store, zoo
from ..data import Data
from ..runtime import default_device, generator
from . import locality

# Per-profile defaults (None in run() means these). n_source: training images perturbed (None:
# all). Ks: the K-interpolation's base-set sizes (1 is D_adv, the standard perturbation);
# K_univ: D_univ's (the paper's batch); restrict_K: the base-set size of the single-class
# variant, compared with random base sets of the same size (so it must be in Ks). eps_scale:
# every budget is eps_scale times the threat model's; smoke perturbs with 3x the budget because
# its weak models' universal perturbations at eps fool too few images in the hard (class,
# target) cells for the exact balancing to keep a usable data set. solver: the universal
# perturbations' full-batch steps and step size (fraction of eps).
DEFAULTS = {
    "smoke": {"n_source": 1500, "Ks": [1, 2, 16, 256], "K_univ": 256, "restrict_K": 16, "eps_scale": 3.0,
              "solver": {"steps": 5, "step": 0.3, "max_batch": 128}},
    "paper": {"n_source": None, "Ks": [1, 2, 4, 8, 16, 32, 256], "K_univ": 256, "restrict_K": 256, "eps_scale": 1.0,
              "solver": {"steps": 20, "step": 0.2, "max_batch": 4096}},
}
CYCLIC = "univ-cyclic"  # leakage bound: cut to its own size, not the common one


def k_name(k: int, k_univ: int) -> str:
    """The catalogue name of the K-interpolation row K."""
    return "adv" if k == 1 else "univ" if k == k_univ else f"univ-K{k}"


def catalogue(norm: str, eps: float, linf_eps: float, Ks: list[int], k_univ: int, restrict_k: int) -> dict:
    """Every variant the book trains on, by name: D_adv at eps and eps/2, D_univ, both in linf,
    the K-interpolation, single-class base sets and cyclic labels."""
    v = constructed.variant
    names = {"adv": v("adv", norm, eps), "adv-half": v("adv", norm, eps / 2), "univ": v("univ", norm, eps, k_univ),
             "adv-linf": v("adv", "linf", linf_eps), "univ-linf": v("univ", "linf", linf_eps, k_univ)}
    names |= {k_name(k, k_univ): v("univ", norm, eps, k) for k in Ks if k not in (1, k_univ)}
    names["univ-class"] = v("univ", norm, eps, restrict_k, "class")
    names[CYCLIC] = v("univ", norm, eps, k_univ, "cyclic")
    return names


def budget_note(opts: dict) -> str:
    """One sentence for the pages that train on the catalogue: at which budget it was made."""
    if opts["eps_scale"] == 1:
        return "The perturbations were made at the threat model's budget."
    return (f"The perturbations were made at {opts['eps_scale']:g} times the threat model's budget (this profile's "
            "eps_scale; the Constructed data sets page says why).")


def plan(profile: str = "smoke", *, n_source=None, Ks=None, K_univ=None, restrict_K=None, eps_scale=None,
         solver=None, **overrides) -> dict:
    """Check the parameters and lay out what run() builds: {"cfg", "opts", "names", "params"}.
    Raises ValueError naming a bad parameter before any model or data is touched."""
    if profile not in DEFAULTS:
        raise ValueError(f"profile must be one of {sorted(DEFAULTS)}, got {profile!r}")
    cfg = profiles.settings(profile, **overrides)
    d = DEFAULTS[profile]
    opts = {"n_source": d["n_source"] if n_source is None else n_source, "Ks": d["Ks"] if Ks is None else Ks,
            "K_univ": d["K_univ"] if K_univ is None else K_univ,
            "restrict_K": d["restrict_K"] if restrict_K is None else restrict_K,
            "eps_scale": d["eps_scale"] if eps_scale is None else eps_scale}
    if opts["n_source"] is not None:
        profiles.positive_int("n_source", opts["n_source"])
    if not isinstance(opts["Ks"], (list, tuple)) or not opts["Ks"] or len(set(opts["Ks"])) != len(opts["Ks"]):
        raise ValueError(f"Ks must be a non-empty list of distinct positive integers, got {opts['Ks']!r}")
    for k in opts["Ks"]:
        profiles.positive_int("Ks", k)
    opts["Ks"] = sorted(opts["Ks"])
    profiles.positive_int("K_univ", opts["K_univ"])
    if opts["restrict_K"] not in opts["Ks"]:
        raise ValueError(f"restrict_K must be one of Ks {opts['Ks']} (it is compared with random base sets of that "
                         f"size), got {opts['restrict_K']!r}")
    if isinstance(opts["eps_scale"], bool) or not isinstance(opts["eps_scale"], (int, float)) or opts["eps_scale"] <= 0:
        raise ValueError(f"eps_scale must be a positive number, got {opts['eps_scale']!r}")
    solver = {**d["solver"], **(solver or {})}
    if set(solver) != set(d["solver"]):
        raise ValueError(f"solver may only set {sorted(d['solver'])}, got {sorted(set(solver) - set(d['solver']))}")
    profiles.positive_int("solver['steps']", solver["steps"])
    profiles.positive_int("solver['max_batch']", solver["max_batch"])
    if not solver["step"] > 0:
        raise ValueError(f"solver['step'] must be > 0 (a fraction of eps), got {solver['step']!r}")
    opts["solver"] = solver
    norm, eps = locality.threat(cfg, None, None)
    linf_eps = locality.DEFAULT_EPS["linf"]
    names = catalogue(norm, eps * opts["eps_scale"], linf_eps * opts["eps_scale"], opts["Ks"], opts["K_univ"],
                      opts["restrict_K"])
    return {"cfg": cfg, "opts": opts, "names": names}


def _source(train_data: Data, n_source: int | None, seed: int) -> Data:
    """The training images that get perturbed: all, or a seeded random subset."""
    if n_source is None:
        return train_data
    if n_source > len(train_data):
        raise ValueError(f"n_source must be at most the {len(train_data)} training images, got {n_source}")
    pick = torch.randperm(len(train_data), generator=generator(seed))[:n_source].sort().values
    return Data(x=train_data.x[pick], y=train_data.y[pick], classes=train_data.classes,
                identity=f"{train_data.identity}[{n_source}@{seed}]")


def _raw_params(spec_model: dict, source: Data, variant: dict, opts: dict, seed: int) -> dict:
    return {"model": spec_model, "source": source.identity, "variant": variant, "solver": opts["solver"], "seed": seed}


def _raw(model, spec_model: dict, source: Data, variant: dict, opts: dict, seed: int, progress: bool) -> dict:
    """One variant's perturbed images, built or loaded from the store."""
    return store.fetch("constructed-raw", _raw_params(spec_model, source, variant, opts, seed), lambda _w: (
        constructed.build(model, source, variant, solver=opts["solver"], seed=seed, progress=progress)))


def _setup(profile, device, progress, params):
    p = plan(profile, **params)
    cfg = p["cfg"]
    train_data, test_data = zoo.load_data(cfg["data"])
    source = _source(train_data, p["opts"]["n_source"], cfg["seed"])  # checks n_source before any training
    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test_data, device=device or default_device(), progress=progress)
    return p, train_data, test_data, spec, model, meta, source


def _table(source: Data, raw: dict) -> torch.Tensor:
    return constructed.cell_table(source.y, raw["t"], raw["fooled"], len(source.classes))


def _plan(name: str, source: Data, raw: dict, common: torch.Tensor) -> torch.Tensor:
    """The cells to keep of a variant: the common plan, or the cyclic variant's own."""
    return constructed.cut([_table(source, raw)], cyclic=True) if name == CYCLIC else common


def run(profile: str = "smoke", *, device=None, progress: bool = True, **params) -> dict:
    """Build (or load) every variant of the catalogue and cut them to common per-cell counts.

    params: n_source, Ks, K_univ, restrict_K, eps_scale, solver (see DEFAULTS) and profile
    settings (data, width, seed, ...). Returns the stats of every variant (built, fooled share,
    kept, mean base-set size, label balance of what was kept), the common plan ([C, C] examples
    kept per (class, target) cell) and a few example images per variant; the images themselves
    stay in the store.
    """
    p, train_data, test_data, spec, model, meta, source = _setup(profile, device, progress, params)
    cfg, opts, names = p["cfg"], p["opts"], p["names"]
    seed, num_classes = cfg["seed"], len(train_data.classes)

    def compute(_workdir) -> dict:
        raws = {name: _raw(model, spec, source, v, opts, seed, progress) for name, v in names.items()}
        common = constructed.cut([_table(source, r) for name, r in raws.items() if name != CYCLIC])
        stats, examples = {}, {}
        for name, r in raws.items():
            index = constructed.select(source.y, r["t"], r["fooled"], _plan(name, source, r, common), seed)
            by_target = torch.stack([r["fooled"][r["t"] == c].float().mean() for c in range(num_classes)])
            stats[name] = {"variant": names[name], "built": len(r["t"]), "fooled": r["fooled"].float().mean().item(),
                           "fooled_by_target": by_target, "kept": len(index), "base_size": r["base_size"],
                           **constructed.balance_report(source.y[index], r["t"][index], num_classes)}
            if name == CYCLIC:  # its labels depend on y by design
                stats[name]["max_gap"] = None
            first = index[:8]
            examples[name] = {"x": source.x[first], "perturbed": r["x"][first], "t": r["t"][first],
                              "deltas": r["deltas"], "delta_targets": r["delta_targets"]}
        return {"stats": stats, "common": common, "examples": examples}

    key = {"model": spec, "source": source.identity, "names": names, "opts": opts, "seed": seed}
    result = store.fetch("constructed", key, compute)
    hardware = {meta["provenance"]["hardware"], store.meta("constructed", key)["hardware"]}
    hardware |= {store.meta("constructed-raw", _raw_params(spec, source, v, opts, seed))["hardware"]
                 for v in names.values()}
    return {"cfg": cfg, "train": train_data, "test": test_data, "source": source, "opts": opts, "names": names,
            "natural_acc": meta["clean_acc"], "hardware": hardware, **result}


def dataset(profile: str = "smoke", name: str = "univ", *, device=None, progress: bool = True, **params) -> tuple:
    """(constructed Data, test Data, hardware) of one catalogue variant, for a training run: only
    that variant's images are loaded. Builds the catalogue if it is missing (call run() first
    when several runs need it at once)."""
    names = plan(profile, **params)["names"]
    if name not in names:
        raise ValueError(f"dataset must be one of {sorted(names)}, got {name!r}")
    out = run(profile, device=device, progress=progress, **params)
    p, train_data, test_data, spec, model, meta, source = _setup(profile, device, False, params)
    seed = p["cfg"]["seed"]
    raw = _raw(model, spec, source, p["names"][name], p["opts"], seed, False)
    cells = _plan(name, source, raw, out["common"])
    index = constructed.select(source.y, raw["t"], raw["fooled"], cells, seed)
    if not len(index):
        raise ValueError(f"constructed data set {name!r} is empty: no target was reached in every class; "
                         "raise eps_scale or n_source, or train the natural model longer")
    identity = f"{name}:{store.key('constructed-raw', _raw_params(spec, source, p['names'][name], p['opts'], seed))}"
    return constructed.dataset(source, raw, index, f"{identity}:{cells.tolist()}"), test_data, out["hardware"]
