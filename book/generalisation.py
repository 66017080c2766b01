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
# # Generalisation
#
# **Claim (PAPER.md, claim 3).** Universal perturbations carry less non-robust signal than
# standard ones: a model trained on a data set whose only useful features come from universal
# perturbations (D_univ) generalises to the real test set much worse than one trained on the
# same construction with standard perturbations (D_adv).
#
# **Test (I-T3, I-T8).** A fresh ResNet-18 is trained on each constructed data set of the
# previous page (D_adv and D_univ, l2 and linf, and D_adv at eps/2) for every setting of the
# hyperparameter grid (learning rate x batch size x {no decay, one x0.1 drop half-way}, standard
# augmentation, weight decay 5e-4) and tested on the original, clean test set. Each data set is
# reported with the best setting of the grid (I-T8 names it). The grid runs as a sweep: one
# executed notebook per point (`nrf sweep constructed_training`), points in parallel, and this
# page reads every point back from the artifact store. The labels of the test set are the true
# ones, so a model that learned nothing scores chance (the largest class share).

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # width of the natural ResNet-18 that makes the perturbations; None: the profile's
seed = None  # seed of the natural model, the construction and the training runs; None: the profile's
construction = None  # the Constructed section's parameters (n_source, Ks, ...); None: its defaults
grid = None  # {"lr": [...], "batch_size": [...], "decay": ["none", "step"]}; None or a name left out: the profile's
train_epochs = None  # training epochs per grid point; None: the profile's (paper: 400)
model_width = None  # width of the fresh ResNet-18s; None: the profile's
workers = None  # grid points run in parallel; None: one per GPU, else one per CPU core

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from nrf import report
from nrf.sections import constructed, constructed_training
from nrf.sections import generalisation as section

out = section.run(profile, construction=construction, grid=grid, train_epochs=train_epochs, model_width=model_width,
                  workers=workers, data=data, width=width, seed=seed)
best, points, sets = out["best"], out["points"], out["sets"]
cfg, train_data, hardware = out["cfg"], out["train"], out["hardware"]
DATASETS = section.DATASETS
glue("provenance", Markdown(report.provenance(cfg, train_data, hardware)), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
stamp = report.stamp(cfg, train_data)
first = points[0]
n_test, chance = first["n_test"], first["chance"]


def se(p):
    """Binomial standard error of a test accuracy."""
    return constructed_training.stderr(p, n_test)


rows = []
for name in DATASETS:
    r, v = best[name], sets["stats"][name]["variant"]
    rows.append({"data set": name, "perturbation": "standard" if v["kind"] == "adv" else "universal",
                 "norm": v["norm"], "eps": f"{v['eps']:.3g}", "training images": r["size"],
                 "test acc. (%)": 100 * r["final_acc"], "± s.e.": 100 * se(r["final_acc"]),
                 "chance (%)": 100 * chance})
glue("table_I-T3", pd.DataFrame(rows).set_index("data set").style.format(precision=1), display=False)
grid_rows = [{"data set": r["dataset"], **r["setting"], "test acc. (%)": 100 * r["final_acc"],
              "won": "yes" if best[r["dataset"]] is r else ""} for r in points]
glue("table_I-T8", pd.DataFrame(grid_rows).set_index("data set").style.format(precision=3), display=False)
glue("n_points", len(points), display=False)
glue("budget_note", constructed.budget_note(sets["opts"]), display=False)
glue("n_test", n_test, display=False)
glue("epochs_used", first["setting"]["epochs"], display=False)
glue("size", best["univ"]["size"], display=False)

# %% [markdown]
# ```{glue:figure} table_I-T3
# :name: I-T3
#
# **I-T3 Generalisation.** Clean test accuracy of fresh ResNet-18s trained on each constructed
# data set, best setting of the grid, with the binomial standard error over the test images and
# the chance level. All data sets have the same number of training images.
# ```
#
# ```{glue:figure} table_I-T8
# :name: I-T8
#
# **I-T8 Hyperparameters.** Every point of the grid ({glue:text}`n_points` training runs of
# {glue:text}`epochs_used` epochs each) and the setting that won for each data set (judged by
# the final test accuracy).
# ```

# %% tags=["remove-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.5))
accs = [100 * best[n]["final_acc"] for n in DATASETS]
errs = [100 * se(best[n]["final_acc"]) for n in DATASETS]
colours = ["C0" if n.startswith("adv") else "C1" for n in DATASETS]
ax.bar(DATASETS, accs, yerr=errs, color=colours, capsize=3)
ax.axhline(100 * chance, color="gray", ls="--", label="chance")
ax.set(ylabel="clean test accuracy (%)", title=f"Training on constructed data sets ({stamp})")
ax.title.set_fontsize(9)
ax.legend()
fig.tight_layout()
glue("fig_I-T3", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-T3
# :name: I-T3-bars
#
# **I-T3 Generalisation, as bars.** Standard-perturbation data sets in blue, universal ones in
# orange; error bars: one binomial standard error; dashed: chance.
# ```

# %% tags=["remove-cell"]
def gap(a, b):
    """(difference in points, its standard error) of two data sets' best runs."""
    return constructed_training.gap(best[a], best[b])


lines, holds, testable = [], [], []
for adv_name, univ_name in (("adv", "univ"), ("adv-linf", "univ-linf")):
    d, s = gap(adv_name, univ_name)
    signal = best[adv_name]["final_acc"] - chance > 2 * se(best[adv_name]["final_acc"])
    testable.append(signal)
    holds.append(d > 2 * s)
    lines.append(f"{adv_name} beats {univ_name} by {d:.1f} ± {s:.1f} points"
                 + ("" if signal else f" ({adv_name} itself is not 2 s.e. above chance)"))
glue("comparison", "; ".join(lines), display=False)
if not all(testable):
    verdict = ("cannot be tested at this profile: the models trained on standard perturbations do not generalise "
               "above chance by 2 standard errors, so there is no signal for the universal ones to fall short of")
elif all(holds):
    verdict = "holds at this profile, for both norms"
elif any(holds):
    verdict = "holds for one norm only at this profile"
else:
    verdict = "does not hold at this profile: D_univ is not worse than D_adv by more than 2 standard errors"
glue("verdict", verdict, display=False)
d, s = gap("adv-half", "univ")
glue("half", f"{d:+.1f} ± {s:.1f}", display=False)

# %% [markdown]
# ## Result
#
# {glue:text}`budget_note` Every data set has {glue:text}`size` training images; the test set has
# {glue:text}`n_test` images. {glue:text}`comparison`. D_adv at half the budget scores
# {glue:text}`half` points against D_univ at the full budget.
#
# **Verdict.** The criterion: the claim holds for a norm if the model trained on D_adv beats the
# one trained on D_univ by more than two standard errors of the difference, provided D_adv
# itself generalises above chance. The claim {glue:text}`verdict`.
