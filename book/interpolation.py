# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Interpolating universality
#
# **Claim (PAPER.md, claim 4).** Universality can be interpolated: with a base set of K images
# (K = 1 is a standard perturbation), generalisation from D_univ falls as K grows while the
# visual semantics of the perturbations improve; restricting the base set to one class or
# subclass helps only a little.
#
# **Test (I-T1, I-T5, I-F7, I-T2).** D_univ is built with base sets of K images for every K of
# the profile (K = 1 is D_adv; every variant has the same size, see Constructed data sets), a
# fresh ResNet-18 is trained on each over the hyperparameter grid (the same sweep as the
# Generalisation section, whose points are shared) and tested on the clean test set (I-T1).
# I-T5 asks whether splitting the budget explains the K effect: D_univ with K = 2 at eps against
# D_adv at eps/2. I-F7 shows the perturbation for one target at each K. I-T2 restricts the base
# sets to a single source class (random base sets of the same size beside it); single-subclass
# base sets need fine-grained labels.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # width of the natural ResNet-18 that makes the perturbations; None: the profile's
seed = None  # seed of the natural model, the construction and the training runs; None: the profile's
construction = None  # the Constructed section's parameters (n_source, Ks, ...); None: its defaults
grid = None  # {"lr": [...], "batch_size": [...], "decay": [...]}; None or a name left out: the profile's
train_epochs = None  # training epochs per grid point; None: the profile's (paper: 400)
model_width = None  # width of the fresh ResNet-18s; None: the profile's
workers = None  # grid points run in parallel; None: one per GPU, else one per CPU core
target = "dog"  # the target class of I-F7

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from nrf import attacks, report
from nrf.sections import constructed, constructed_training
from nrf.sections import interpolation as section

out = section.run(profile, construction=construction, grid=grid, train_epochs=train_epochs, model_width=model_width,
                  workers=workers, data=data, width=width, seed=seed)
best, points, sets, K_ROWS = out["best"], out["points"], out["sets"], out["K"]
cfg, train_data, stats, hardware = out["cfg"], out["train"], out["sets"]["stats"], out["hardware"]
glue("provenance", Markdown(report.provenance(cfg, train_data, hardware)), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
stamp = report.stamp(cfg, train_data)
n_test, chance = points[0]["n_test"], points[0]["chance"]


def se(p):
    """Binomial standard error of a test accuracy."""
    return constructed_training.stderr(p, n_test)


def acc(name):
    return 100 * best[name]["final_acc"]


rows = [{"K": k, "data set": name, "mean base set": f"{stats[name]['base_size']:.1f}",
         "training images": best[name]["size"], "test acc. (%)": acc(name),
         "± s.e.": 100 * se(best[name]["final_acc"]), "chance (%)": 100 * chance} for k, name in K_ROWS.items()]
glue("table_I-T1", pd.DataFrame(rows).set_index("K").style.format(precision=1), display=False)
glue("n_points", len(points), display=False)
glue("budget_note", constructed.budget_note(sets["opts"]), display=False)

fig, ax = plt.subplots(figsize=(6, 3.5))
ks = list(K_ROWS)
ax.errorbar(ks, [acc(n) for n in K_ROWS.values()], yerr=[100 * se(best[n]["final_acc"]) for n in K_ROWS.values()],
            fmt="o-", capsize=3, label="D_univ with base sets of K images")
ax.axhline(100 * chance, color="gray", ls="--", label="chance")
ax.set(xscale="log", xticks=ks, xlabel="K (base-set size; 1 = standard perturbation)",
       ylabel="clean test accuracy (%)", title=f"Generalisation versus K ({stamp})")
ax.set_xticklabels([str(k) for k in ks])
ax.title.set_fontsize(9)
ax.legend(fontsize=8)
fig.tight_layout()
glue("fig_I-T1", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} table_I-T1
# :name: I-T1
#
# **I-T1 K-interpolation.** Clean test accuracy of fresh ResNet-18s trained on D_univ built with
# base sets of K images (best setting of the grid; {glue:text}`n_points` training runs on this
# page, shared with the other sections). A target's images are split as evenly as possible into
# sets of about K, so the mean base-set size is shown beside K.
# ```
#
# {glue:text}`budget_note`
#
# ```{glue:figure} fig_I-T1
# :name: I-T1-curve
#
# **I-T1 K-interpolation, as a curve.** The table above against K (log scale); error bars: one
# binomial standard error; dashed: chance.
# ```

# %% tags=["remove-cell"]
t = train_data.classes.index(target) if isinstance(target, str) else int(target)
fig, axes = plt.subplots(1, len(K_ROWS), figsize=(1.8 * len(K_ROWS), 2.3))
for ax, (k, name) in zip(axes, K_ROWS.items()):
    ex = sets["examples"][name]
    row = (ex["delta_targets"] == t).nonzero()[0, 0]
    ax.imshow(attacks.visualise(ex["deltas"][row]), interpolation="nearest")
    ax.set_title(f"K = {k}", fontsize=8)
    ax.axis("off")
fig.suptitle(f"Perturbation toward '{train_data.classes[t]}' at each K ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_I-F7", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-F7
# :name: I-F7
#
# **I-F7 Semantics versus K.** The perturbation of the first base set toward the I-F7 target in
# each K variant of D_univ (±3 sigma visualisation). K = 1 is a standard perturbation of a single
# image. Judge by eye whether the target's pattern emerges as K grows.
# ```

# %% tags=["remove-cell"]
def diff(a, b):
    """(difference in points, its standard error) of two data sets' best runs."""
    return constructed_training.gap(best[a], best[b])


first, last = K_ROWS[min(K_ROWS)], K_ROWS[max(K_ROWS)]
drop, drop_se = diff(first, last)
ordered = [acc(n) for n in K_ROWS.values()]
falls = sum(b <= a for a, b in zip(ordered, ordered[1:]))
signal = best[first]["final_acc"] - chance > 2 * se(best[first]["final_acc"])
if not signal:
    verdict = (f"cannot be tested at this profile: even K = {min(K_ROWS)} does not generalise above chance by 2 "
               "standard errors, so there is nothing to fall")
elif drop > 2 * drop_se:
    verdict = (f"holds at this profile: accuracy falls by {drop:.1f} ± {drop_se:.1f} points from K = {min(K_ROWS)} "
               f"to K = {max(K_ROWS)}, and does not rise at {falls} of the {len(ordered) - 1} steps between")
else:
    verdict = (f"does not hold at this profile: from K = {min(K_ROWS)} to K = {max(K_ROWS)} accuracy changes by "
               f"{-drop:+.1f} ± {drop_se:.1f} points")
glue("verdict_T1", verdict, display=False)

if 2 in K_ROWS:
    d, s = diff(K_ROWS[2], "adv-half")
    budget = (f"D_univ with K = 2 at eps scores {acc(K_ROWS[2]):.1f}% and D_adv at eps/2 {acc('adv-half'):.1f}% "
              f"(difference {d:+.1f} ± {s:.1f} points). If splitting the budget between two images explained the "
              "K effect, the two would score alike; "
              + ("they do, within two standard errors." if abs(d) <= 2 * s else "they differ by more than two "
                 "standard errors, so budget-splitting alone does not explain it."))
    table = pd.DataFrame([{"data set": K_ROWS[2], "description": "D_univ, K = 2, eps", "test acc. (%)": acc(K_ROWS[2])},
                          {"data set": "adv-half", "description": "D_adv, eps/2", "test acc. (%)": acc("adv-half")}])
else:
    budget = f"Not computed: K = 2 is not among this run's Ks ({list(K_ROWS)})."
    table = pd.DataFrame([{"data set": "adv-half", "description": "D_adv, eps/2", "test acc. (%)": acc("adv-half")}])
glue("budget", budget, display=False)
glue("table_I-T5", table.set_index("data set").style.format(precision=1), display=False)

restrict = out["restrict_K"]
random_name = K_ROWS[restrict]
d, s = diff("univ-class", random_name)
fine = train_data.fine_y is not None
rows = [{"base sets": f"random, K = {restrict}", "data set": random_name, "test acc. (%)": acc(random_name)},
        {"base sets": f"single source class, K = {restrict}", "data set": "univ-class",
         "test acc. (%)": acc("univ-class")},
        {"base sets": "single subclass", "data set": "-",
         "test acc. (%)": "not applicable: this data set has no fine-grained labels" if not fine else "not computed"}]
glue("table_I-T2", pd.DataFrame(rows).set_index("base sets").style.format(precision=1), display=False)
span = max(drop, 0.0)
little = -2 * s <= d <= max(2 * s, span / 2)
glue("restrict", f"{d:+.1f} ± {s:.1f}", display=False)
glue("verdict_T2", (
    "cannot be tested at this profile (no K effect to compare with)" if not signal else
    f"holds at this profile: the single-class restriction changes accuracy by {d:+.1f} points, within two standard "
    f"errors or at most half the K = {min(K_ROWS)} to {max(K_ROWS)} drop ({span:.1f} points)" if little else
    f"does not hold at this profile: the single-class restriction changes accuracy by {d:+.1f} ± {s:.1f} points, "
    f"more than half the K drop ({span:.1f} points)"), display=False)
glue("subclass", "Single-subclass base sets need fine-grained labels (ImageNet-M10's 60 classes); "
     + ("this data set has none, so that row is not applicable here." if not fine else
        "they exist here but the book does not compute that row yet."), display=False)

# %% [markdown]
# ## Result
#
# **Verdict (I-T1).** The criterion: accuracy at the smallest K minus accuracy at the largest
# is more than two standard errors of the difference. The claim {glue:text}`verdict_T1`.
#
# ```{glue:figure} table_I-T5
# :name: I-T5
#
# **I-T5 Budget.** D_univ with base sets of two images at the budget eps, against D_adv at half
# the budget (best setting of the grid each).
# ```
#
# {glue:text}`budget`
#
# ```{glue:figure} table_I-T2
# :name: I-T2
#
# **I-T2 Source restriction.** D_univ with random base sets and with base sets drawn from a
# single source class, at the same base-set size (best setting of the grid each).
# ```
#
# The single-class restriction changes accuracy by {glue:text}`restrict` points against random
# base sets of the same size. **Verdict (I-T2).** The criterion: "helps only a little" holds if
# the change is within two standard errors, or at most half the drop from the smallest to the
# largest K. It {glue:text}`verdict_T2`. {glue:text}`subclass`
