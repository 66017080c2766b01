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
# # Leakage
#
# **Claim (PAPER.md, claims 2 and 3).** What a model learns from D_univ comes from non-robust
# features, not from robust features that leaked into the universal perturbations.
#
# **Test (I-T4).** Linear probes are trained on the frozen penultimate features of four models
# (the natural ResNet-18, a second one with another seed, a natural VGG16 and the adversarially
# trained ResNet-18) using D_univ's images and its new labels, and tested on the clean test set
# against the true labels. A probe generalises only if its features respond to what D_univ's
# labels follow, the universal perturbations; if those carried robust features, the robust
# model's probe would generalise as well. **Cyclic labels** bound the leak from the other side:
# in the cyclic-label D_univ the label is t = y + 1, so the robust features of every image point
# one class before its label, and a model that leans on them predicts y + 1 on clean test
# images; the table shows that share beside the accuracy. The fresh ResNet-18s trained on both
# data sets (the Generalisation section's sweep, best setting of the grid) are shown beside the
# probes.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # width of the models; None: the profile's
seed = None  # seed of the natural model, the construction, the probes and training runs; None: the profile's
construction = None  # the Constructed section's parameters (n_source, Ks, ...); None: its defaults
probe_steps = None  # Adam steps of each linear probe; None: 300
grid = None  # grid of the fresh ResNet-18s; None or a name left out: the profile's
train_epochs = None  # training epochs of the fresh ResNet-18s; None: the profile's
model_width = None  # width of the fresh ResNet-18s; None: the profile's
workers = None  # grid points run in parallel; None: one per GPU, else one per CPU core

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from nrf import report
from nrf.sections import leakage as section

out = section.run(profile, construction=construction, probe_steps=probe_steps, grid=grid, train_epochs=train_epochs,
                  model_width=model_width, workers=workers, data=data, width=width, seed=seed)
cfg, train_data, probes, fresh = out["cfg"], out["train"], out["probes"], out["fresh"]
hardware = out["hardware"]
glue("provenance", Markdown(report.provenance(cfg, train_data, hardware)), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
stamp = report.stamp(cfg, train_data)
n_test, chance = out["n_test"], out["chance"]
se = (chance * (1 - chance) / n_test) ** 0.5  # standard error of a chance-level accuracy
rows = []
for name in section.DATASETS:
    for role in section.ROLES:
        p = probes[name][role]
        rows.append({"trained on": name, "features of": role, "model clean acc. (%)": 100 * out["clean_acc"][role],
                     "probe train acc. (%)": 100 * p["train_acc"], "test acc. (%)": 100 * p["test_acc"],
                     "predicts y + 1 (%)": 100 * p["shifted"]})
    r = fresh["best"][name]
    rows.append({"trained on": name, "features of": "fresh ResNet-18 (all layers)", "model clean acc. (%)": None,
                 "probe train acc. (%)": 100 * r["history"]["train_acc"][-1], "test acc. (%)": 100 * r["final_acc"],
                 "predicts y + 1 (%)": None})
glue("table_I-T4", pd.DataFrame(rows).set_index(["trained on", "features of"]).style.format(precision=1, na_rep="-"),
     display=False)
glue("sizes", ", ".join(f"{n}: {s} images" for n, s in out["sizes"].items()), display=False)
glue("chance", 100 * chance, display=False)
glue("se2", 200 * se, display=False)

# %% [markdown]
# ```{glue:figure} table_I-T4
# :name: I-T4
#
# **I-T4 Leakage probes.** Linear probes on frozen penultimate features, trained on D_univ and on
# the cyclic-label D_univ, tested on the clean test set with the true labels; "predicts y + 1" is
# the share of test images the probe assigns to the class after their own (the cyclic label).
# Last row of each block: a fresh ResNet-18 trained on the same data (best of the grid).
# ```

# %% tags=["remove-input"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
for ax, name in zip(axes, section.DATASETS):
    roles = list(section.ROLES)
    ax.bar(roles, [100 * probes[name][r]["test_acc"] for r in roles], color="C0", label="test acc.")
    ax.bar(roles, [100 * probes[name][r]["shifted"] for r in roles], color="C3", alpha=0.5, width=0.4,
           label="predicts y + 1")
    ax.axhline(100 * chance, color="gray", ls="--", label="chance")
    ax.set_title(name, fontsize=9)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
axes[0].set_ylabel("share of clean test images (%)")
axes[0].legend(fontsize=8)
fig.suptitle(f"Linear probes on frozen features ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_I-T4", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-T4
# :name: I-T4-bars
#
# **I-T4 Leakage probes, as bars.** Test accuracy of each probe (blue) and the share it predicts
# as the class after the true one (red); dashed: chance.
# ```

# %% tags=["remove-cell"]
def above(p):
    return p - chance > 2 * se


natural_learns = above(probes["univ"]["natural"]["test_acc"])
robust_learns = above(probes["univ"]["robust"]["test_acc"])
robust_cyclic = probes[section.DATASETS[1]]["robust"]["shifted"]
lines = (f"the natural model's probe scores {100 * probes['univ']['natural']['test_acc']:.1f}% and the robust "
         f"model's {100 * probes['univ']['robust']['test_acc']:.1f}% (chance {100 * chance:.1f}%)")
if not natural_learns:
    verdict = ("cannot be tested at this profile: even the natural model's probe does not beat chance by 2 standard "
               f"errors ({lines}), so there is no learned signal whose source could be checked")
elif robust_learns:
    verdict = f"does not hold at this profile: the robust model's probe generalises too ({lines})"
else:
    verdict = f"holds at this profile: {lines}, so what D_univ teaches is read by non-robust features only"
glue("verdict", verdict, display=False)
glue("cyclic", (f"On the cyclic-label D_univ the robust model's probe predicts the cyclic label y + 1 for "
                f"{100 * robust_cyclic:.1f}% of the clean test images "
                + ("- more than chance by 2 standard errors: robust features did leak into the labels' direction."
                   if above(robust_cyclic) else "- within 2 standard errors of chance: no sign of leaked robust "
                   "features.")), display=False)

# %% [markdown]
# ## Result
#
# Training sets: {glue:text}`sizes`. Chance is {glue:text}`chance:.1f`%; two standard errors of
# a chance-level accuracy are {glue:text}`se2:.1f` points.
#
# **Verdict.** The criterion: the claim holds if the natural model's probe beats chance by two
# standard errors while the robust model's does not. It {glue:text}`verdict`.
# {glue:text}`cyclic`
