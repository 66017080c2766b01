"""How much compute each stage of `nrf reproduce paper` takes, counted from the code's options.

Before a GPU is at hand, this shows which stages of the paper profile fit a GPU window of a few
minutes (8, say) and which must be split or run elsewhere. Nothing is trained or loaded:

    .venv/bin/python bench/paper_flops.py                      # the paper profile, one markdown table
    .venv/bin/python bench/paper_flops.py --params grids/paper-full.yaml   # with the full constructed-data grid

A stage is counted as terms (model, kind, images): `images` image passes of one kind through a
model of the zoo. FLOPs per image are measured with torch's FlopCounterMode (convolutions and
matrix products; batch norm and activations are not counted) on one 32 px image, per kind:
forward; gradient (forward, then backward to the input only: an attack step, about 2 forward
passes, since no weight gradients are formed); backward (one more backward to the input
through a kept graph: DeepFool's further candidate classes); training (forward, then backward
to the weights: an SGD step, about 3 forward passes). "Passes" are these counts in forward
equivalents of the model they run on. Terms under about 1% of their stage are left out (each
is named where it is left out).

Rows follow nrf.reproduce: the models stage trains each role in a process of its own, then
writes its record from the store. An artifact (a trained model, a universal perturbation, a
constructed data set, a training on it...) is counted in the first stage that computes it, in
the book's order, as the artifact store makes later stages load it.

Two counts are upper bounds, as the work depends on the data: a constructed data set keeps at
most every perturbed image (the balanced cut keeps fewer: 23% at the medium profile), and
Algorithm 1 (Part II) runs all its passes with every image of X through DeepFool for all its
iterations (at the book's radius the medium runs fool 10-20% of X, never the 80% that stops
early, so the passes are real; DeepFool usually needs fewer iterations than its cap).
"""

import argparse
import functools
import inspect

import torch
from torch.utils.flop_counter import FlopCounterMode

from nrf import algorithm1, contents, options, records, reproduce, universals, zoo
from nrf import constructed as nrf_constructed
from nrf import grid as nrf_grid
from nrf import models as nrf_models
from nrf.sections import appendix as appendix_page
from nrf.sections import gallery as gallery_page
from nrf.sections import generalisation as generalisation_page
from nrf.sections import leakage as leakage_page
from nrf.sections import scaling as scaling_page
from nrf.sections import spatial as spatial_page
from nrf.sections import transfer as transfer_page

SIZES = {"cifar10": (50_000, 10_000), "sample": (5_000, 1_000)}  # (train, test) images of a `data` option
SIDE = 32  # CIFAR-10 image side
RATES = (100e12, 300e12)  # sustained FLOP/s of the columns
WINDOW = 8  # minutes of a GPU window
PGD_STEPS = 10  # the standard perturbation of every section and of D_adv (constructed.build's epochs=10)
UAP_DEEPFOOL_ITERATIONS = 10  # algorithm1.uap calls deepfool with max_iter=10
DEEPFOOL = inspect.signature(algorithm1.deepfool).parameters
CANDIDATES = DEEPFOOL["num_candidates"].default  # one backward per candidate class but the first, per iteration


@functools.cache
def per_image(arch: str, width: int) -> dict:
    """FLOPs of one image through a freshly built model, per kind of pass (module docstring)."""
    model = nrf_models.build(arch, width=width).eval()
    x = torch.rand(1, 3, SIDE, SIDE)

    def count(weights: bool, inputs: bool) -> int:
        model.requires_grad_(weights)
        with FlopCounterMode(display=False) as counter:
            out = model(x.clone().requires_grad_(inputs)).sum()
            if weights or inputs:
                out.backward()
        return counter.get_total_flops()

    forward, gradient = count(False, False), count(False, True)
    return {"forward": forward, "gradient": gradient, "backward": gradient - forward, "training": count(True, False)}


def net(cfg: dict, role: str) -> tuple[str, int]:
    """(arch, width) of a role of the zoo, as zoo.recipe builds it."""
    spec = zoo.recipe(cfg, role, "")
    return spec["arch"], spec["width"]


def n_targets(cfg: dict) -> int:
    """How many target classes a section's `targets` option names (null: every class)."""
    return len(options.class_indices(cfg["targets"], options.CIFAR10_CLASSES))


# ---- Shared artifacts: (store key, terms) -------------------------------------------------------


def model(cfg: dict, role: str, n_train: int, n_test: int) -> tuple:
    """zoo.trained -> train.train: every epoch one SGD step per training image, after adv_steps
    PGD steps on it for the robust model, and the test accuracy; then the clean accuracy."""
    spec, m = zoo.recipe(cfg, role, ""), net(cfg, role)
    adv_steps, epochs = spec["adv"]["steps"] if spec["adv"] else 0, spec["epochs"]
    return ("model", role), [
        (m, "training", epochs * n_train),
        (m, "gradient", epochs * n_train * adv_steps),
        (m, "forward", (epochs + 1) * n_test),
    ]


def robust_accuracy(cfg: dict, role: str, n_test: int) -> tuple:
    """zoo.robust_accuracy -> train.robust_accuracy: eval_steps PGD steps and a prediction per test image."""
    m = net(cfg, role)
    return ("robust-accuracy", role), [(m, "gradient", zoo.evaluation(cfg)["steps"] * n_test), (m, "forward", n_test)]


def universal(
    cfg: dict, role: str, n_train: int, n_test: int, norm: str, eps: float, seed: int, solver: dict | None = None
) -> tuple:
    """universals.per_target: attacks.perturb visits each target's base set once per solver epoch
    (a gradient step per image), then attacks.asr scores each perturbation on the test split."""
    solver = solver or universals.solver(cfg, n_train)
    m, targets = net(cfg, role), n_targets(cfg)
    return (
        ("universal", role, norm, eps, seed, *solver.values()),
        [(m, "gradient", solver["epochs"] * targets * solver["base_size"]), (m, "forward", targets * n_test)],
    )


def patch_scores(cfg: dict, role: str, n_test: int, norm: str) -> tuple:
    """patches.score: attacks.asr_many runs every patch of every target's perturbation, and the
    whole perturbation, over the scored test images; one clean prediction each for the chance."""
    n, targets = cfg["n_eval"] or n_test, n_targets(cfg)
    return ("patches", role, norm), [(net(cfg, role), "forward", targets * (cfg["n_patches"] + 1) * n + n)]


def deepfool(m: tuple, images: int, iterations: int) -> list:
    """algorithm1.deepfool, bound: a clean forward, then every image active for every iteration
    (a forward kept for CANDIDATES - 1 backward passes to the input)."""
    return [
        (m, "forward", images),
        (m, "gradient", images * iterations),
        (m, "backward", images * iterations * (CANDIDATES - 2)),
    ]


def algorithm1(m: tuple, n: int, cfg: dict) -> list:
    """algorithm1.uap (batched) on n images, bound: the clean labels, then every pass checks each
    image, sends it through DeepFool (uaps.OPTIONS' max_passes) and scores X at its end."""
    passes = cfg["max_passes"]
    return [(m, "forward", n + 2 * passes * n), *deepfool(m, passes * n, UAP_DEEPFOOL_ITERATIONS)]


def trainings(cfg: dict, names: list[str], n_train: int, n_test: int) -> list:
    """grid.train for every data set of `names` and point of the grid: epochs of SGD steps over
    the kept images (bound: every perturbed image) and the test accuracy after each epoch."""
    n, m = cfg["n_source"] or n_train, ("resnet18", cfg["model_width"])
    return [
        (
            ("constructed-training", name, *point.values()),
            [(m, "training", point["epochs"] * n), (m, "forward", point["epochs"] * n_test)],
        )
        for name in names
        for point in nrf_grid.settings(cfg)
    ]


# ---- The stages, nrf/sections/*.py ------------------------------------------------------------------
# Every section takes its models from the models stage (zoo.trained loads them from the store).


def models(cfg: dict, n_train: int, n_test: int) -> list:
    """Each role's training and its robust accuracy (sections/models.py asks for both)."""
    return [a for role in cfg["roles"] for a in (model(cfg, role, n_train, n_test), robust_accuracy(cfg, role, n_test))]


def gallery(cfg: dict, n_train: int, n_test: int) -> list:
    """Each gallery's universal perturbations and clean predictions; the main one's patch scores.
    I-F1's standard perturbations (2 images, 10 steps) are left out."""
    norm, eps = options.threat(cfg)
    shown = [(cfg["arch"], norm, eps)] + [
        (arch, nm, eps if nm == norm else options.DEFAULT_EPS[nm])
        for arch, nm in gallery_page.EXTRA_GALLERIES.values()
        if cfg["extras"] and (arch, nm) != (cfg["arch"], norm)
    ]
    found = []
    for arch, nm, ep in shown:
        role = gallery_page.ARCHS[arch]
        found += [
            universal(cfg, role, n_train, n_test, nm, ep, cfg["seed"]),
            (("clean predictions", role), [(net(cfg, role), "forward", n_test)]),
        ]
    return found + [patch_scores(cfg, gallery_page.ARCHS[cfg["arch"]], n_test, norm)]


def locality(cfg: dict, n_train: int, n_test: int) -> list:
    """Per norm (with extras, both): the natural model's universal perturbations and their patch scores."""
    norm, eps = options.threat(cfg)
    threats = [(norm, eps)] + [(o, options.DEFAULT_EPS[o]) for o in options.DEFAULT_EPS if cfg["extras"] and o != norm]
    return [
        a
        for nm, ep in threats
        for a in (
            universal(cfg, "natural", n_train, n_test, nm, ep, cfg["seed"]),
            patch_scores(cfg, "natural", n_test, nm),
        )
    ]


def spatial(cfg: dict, n_train: int, n_test: int) -> list:
    """per_target universal perturbations per target; standard_shifts: PGD on n_standard images,
    each scored on its image at every shift; universal_shifts: every universal perturbation on
    n_eval images at every shift (spatial.shift_grid)."""
    norm, eps = options.threat(cfg)
    m, shifts, targets = net(cfg, "natural"), len(spatial_page.shift_grid(SIDE, cfg["stride"])[0]), n_targets(cfg)
    unis = [universal(cfg, "natural", n_train, n_test, norm, eps, cfg["seed"] + p) for p in range(cfg["per_target"])]
    standard = [(m, "gradient", PGD_STEPS * cfg["n_standard"]), (m, "forward", (shifts + 1) * cfg["n_standard"])]
    shifted = [(m, "forward", (cfg["per_target"] * targets * shifts + 1) * cfg["n_eval"])]
    return unis + [(("spatial", "standard"), standard), (("spatial", "universal"), shifted)]


def scaling(cfg: dict, n_train: int, n_test: int) -> list:
    """The robust model's own universal perturbations (robust solver options) and measure():
    every kind of MEASURED at every scale of the grid on each model, plus its chance predictions."""
    norm, eps = options.threat(cfg)
    robust_solver = {
        **universals.solver(cfg, n_train),
        "base_size": cfg["robust_base_size"],
        "epochs": cfg["robust_solver_epochs"],
        "batch_size": cfg["robust_solver_batch"],
    }
    scales = len({float(s) for s in cfg["scales"]} | {1.0, float(cfg["factor"])})
    n, targets = cfg["scale_eval"] or n_test, n_targets(cfg)
    measured = [
        (net(cfg, role), "forward", (len(kinds) * targets * scales + 1) * n)
        for role, kinds in scaling_page.MEASURED.items()
    ]
    return [
        robust_accuracy(cfg, "robust", n_test),
        universal(cfg, "natural", n_train, n_test, norm, eps, cfg["seed"]),
        universal(cfg, "robust", n_train, n_test, norm, cfg["factor"] * eps, cfg["seed"], robust_solver),
        patch_scores(cfg, "natural", n_test, norm),
        (("scaling", "measure"), measured),
    ]


def transfer(cfg: dict, n_train: int, n_test: int) -> list:
    """predictions(): PGD on the perturbed test images on the source model, then each model's clean,
    standard and per-target universal labels."""
    norm, eps = options.threat(cfg)
    n, targets = cfg["n_test"] or n_test, n_targets(cfg)
    roles = (transfer_page.SOURCE, *transfer_page.OTHERS)
    labels = [(net(cfg, transfer_page.SOURCE), "gradient", PGD_STEPS * n)] + [
        (net(cfg, role), "forward", (2 + targets) * n) for role in roles
    ]
    return [universal(cfg, "natural", n_train, n_test, norm, eps, cfg["seed"]), (("transfer",), labels)]


def constructed(cfg: dict, n_train: int, n_test: int) -> list:
    """constructed.build per variant of the catalogue: every source image perturbed, D_adv by
    PGD_STEPS steps, D_univ's (full-batch base sets) by solver_epochs steps, then checked once."""
    n, m = cfg["n_source"] or n_train, net(cfg, "natural")
    found = []
    for name, v in nrf_constructed.variants(cfg).items():
        steps = PGD_STEPS if v["kind"] == "adv" else cfg["solver_epochs"]
        found.append((("constructed-raw", name), [(m, "gradient", steps * n), (m, "forward", n)]))
    return found


def generalisation(cfg: dict, n_train: int, n_test: int) -> list:
    return trainings(cfg, generalisation_page.DATASETS, n_train, n_test)


def interpolation(cfg: dict, n_train: int, n_test: int) -> list:
    """The K rows, the single-class variant and D_adv at eps/2 (interpolation.run's names)."""
    rows = [nrf_constructed.k_name(k, cfg["K_univ"]) for k in sorted(cfg["Ks"])]
    return trainings(cfg, list(dict.fromkeys([*rows, "univ-class", "adv-half"])), n_train, n_test)


def leakage(cfg: dict, n_train: int, n_test: int) -> list:
    """Features of each probed model on the test split and on both data sets (bound: every
    perturbed image kept); the linear probes on them are left out (a 512-wide layer); then the
    fresh trainings on both data sets."""
    n = cfg["n_source"] or n_train
    features = [(net(cfg, role), "forward", n_test + len(leakage_page.DATASETS) * n) for role in leakage_page.ROLES]
    return [(("leakage", "probes"), features)] + trainings(cfg, list(leakage_page.DATASETS), n_train, n_test)


def appendix(cfg: dict, n_train: int, n_test: int) -> list:
    """dynamics (I-F9): one perturb call per setting of the sweep, every target a group, scored on
    the test images and on its base set; augmented (I-A6): two groups of base_size, scored on both
    models (its PGD on one image left out); diverse (I-F17): diversity.solve without and with the
    penalty (a clean forward per batch, a gradient step per perturbation and image) and its scores."""
    m, n, targets = net(cfg, "natural"), cfg["n_eval"] or n_test, n_targets(cfg)
    epochs, k, d = cfg["solver_epochs"], cfg["base_size"], cfg["n_diverse"]
    settings = appendix_page.sweep(
        cfg["solver_step"], cfg["solver_batch"], k, cfg["steps"], cfg["batches"], cfg["base_sizes"]
    )
    dynamics = [(m, "forward", n)] + [
        t
        for _, _, size in settings
        for t in ((m, "gradient", epochs * targets * size), (m, "forward", targets * (n + size)))
    ]
    augmented = [(m, "gradient", 2 * epochs * k)] + [(net(cfg, role), "forward", 4 * n) for role in appendix_page.ROLES]
    diverse = [(m, "forward", n)] + 2 * [(m, "forward", epochs * k + (2 * d + 1) * n), (m, "gradient", epochs * d * k)]
    return [
        (("appendix", "dynamics"), dynamics),
        (("appendix", "augmented"), augmented),
        (("appendix", "diverse"), diverse),
    ]


def uap(cfg: dict, n_train: int, n_test: int) -> list:
    """Algorithm 1 per model and norm, and per size of X (first model and norm); every model's
    labels on the test images for its perturbations (clean, the random baselines); II-A1's
    per-image and batched Algorithm 1 on compare_n images, each scored."""
    archs, norms, n = cfg["archs"], cfg["norms"], cfg["n_eval"] or n_test
    first, m = archs[0], net(cfg, archs[0])
    found = [
        (("uap", role, norm, cfg["n_train"]), algorithm1(net(cfg, role), cfg["n_train"], cfg))
        for role in archs
        for norm in norms
    ]
    found += [(("uap", first, norms[0], size), algorithm1(m, size, cfg)) for size in cfg["sizes"]]
    labels = []  # predictions(): clean, every perturbation found (the sizes on the first model), 2 random directions
    for role in archs:
        shown = 1 + len(archs) * len(norms) + (len(cfg["sizes"]) if role == first else 0) + 2
        labels.append((("uap-predictions", role), [(net(cfg, role), "forward", shown * n)]))
    compare = 2 * algorithm1(m, cfg["compare_n"], cfg) + [(m, "forward", 4 * n)]
    return found + labels + [(("uap-compare",), compare)]


def uap_analysis(cfg: dict, n_train: int, n_test: int) -> list:
    """The uap section's perturbation (shared); II-F5: random draws and rescalings at every radius,
    with recompute Algorithm 1 afresh at each; II-T6: per round, ft_epochs of fine-tuning (after
    round 0) and a pool of perturbations (the first of round 0 shared), scored; II-F7: DeepFool
    (its own max_iter) on n_normals training images, then random draws per subspace."""
    m, n, norm = net(cfg, "natural"), cfg["n_eval"] or n_test, cfg["norm"]
    radii, draws = len(set(cfg["scales"]) | {1.0}), cfg["draws"]
    recompute = radii * [(m, "forward", n), *algorithm1(m, cfg["n_train"], cfg)] if cfg["recompute"] else []
    f5 = [(m, "forward", n * (1 + draws * radii + radii))] + recompute
    rounds, solves = cfg["rounds"], (cfg["rounds"] + 1) * cfg["pool"] - 1
    t6 = [
        (m, "training", rounds * cfg["ft_epochs"] * (cfg["ft_size"] or n_train)),
        (m, "forward", 3 * (rounds + 1) * n),
        *solves * algorithm1(m, cfg["n_train"], cfg),
    ]
    f7 = deepfool(m, cfg["n_normals"], DEEPFOOL["max_iter"].default) + [
        (m, "forward", (len(cfg["dims"]) + 1) * draws * n)
    ]
    return [
        (("uap", "natural", norm, cfg["n_train"]), algorithm1(m, cfg["n_train"], cfg)),
        (("uap-random",), f5),
        (("uap-finetune",), t6),
        (("uap-normals",), f7),
    ]


STAGES = {
    "models": models,
    "gallery": gallery,
    "locality": locality,
    "spatial": spatial,
    "scaling": scaling,
    "transfer": transfer,
    "constructed": constructed,
    "generalisation": generalisation,
    "interpolation": interpolation,
    "leakage": leakage,
    "appendix": appendix,
    "uap": uap,
    "uap_analysis": uap_analysis,
}


def count(profile: str = "paper", params: dict | None = None) -> list[dict]:
    """One row per process of `nrf reproduce` (reproduce.parts): {"stage", "passes" (forward
    equivalents), "flops"}. params: options given to every section that declares them, as
    `nrf reproduce --params` gives them."""
    rows, seen = [], set()
    for name, section in contents.PAGES.items():
        declared = {o.name for o in section.OPTIONS}
        given = {"profile": profile, **{k: v for k, v in (params or {}).items() if k in declared}}
        for label, part, _ in reproduce.parts(name, given):
            cfg = records.resolve(section, part)
            if cfg["data"] not in SIZES:
                raise ValueError(f"data must be one of {list(SIZES)} to be counted, got {cfg['data']!r}")
            passes = flops = 0
            for key, terms in STAGES[name](cfg, *SIZES[cfg["data"]]):
                if key in seen:  # computed by an earlier process (or earlier in this one): loaded from the store
                    continue
                seen.add(key)
                for m, kind, images in terms:
                    cost = per_image(*m)
                    passes += images * cost[kind] / cost["forward"]
                    flops += images * cost[kind]
            rows.append({"stage": label, "passes": passes, "flops": flops})
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows and their total as a markdown table, then the stages over WINDOW minutes per rate."""
    head = ["stage", "passes (M fwd-equiv.)", "PFLOP"] + [f"min at {r / 1e12:.0f} TFLOP/s" for r in RATES]
    total = {"stage": "**total**", "passes": sum(r["passes"] for r in rows), "flops": sum(r["flops"] for r in rows)}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for r in rows + [total]:
        lines.append(
            f"| {r['stage']} | {r['passes'] / 1e6:,.1f} | {r['flops'] / 1e15:,.2f} | "
            + " | ".join(f"{r['flops'] / rate / 60:,.1f}" for rate in RATES)
            + " |"
        )
    lines.append("")
    for rate in RATES:
        over = [r["stage"] for r in rows if r["flops"] / rate / 60 > WINDOW]
        lines.append(f"- over {WINDOW} minutes at {rate / 1e12:.0f} TFLOP/s: {', '.join(over) or 'none'}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="paper", choices=options.PROFILES)
    p.add_argument(
        "--params", metavar="FILE", help="options for every section that has them (YAML), e.g. grids/paper-full.yaml"
    )
    args = p.parse_args()
    print(markdown(count(args.profile, options.options_file(args.params) if args.params else None)))


if __name__ == "__main__":
    main()
