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
# (leakage)=
# # Leakage
#
# **Claim** ({ref}`claims 2 <claim-2>` and {ref}`3 <claim-3>` of {cite}`park2021distinctive`). What a model learns
# from D_univ comes from non-robust
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
# images; the table shows that share beside the accuracy. Fresh ResNet-18s trained on both data
# sets (the hyperparameter grid of {ref}`generalisation`, best setting) are shown beside the
# probes. The cyclic-label model is judged only where the fresh model on D_univ is 10 points above
# chance: cyclic labels can carry no more of the true classes than D_univ's own labels do.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd

from nrf import claims, constructed, grid, page, reported
from nrf.sections import leakage as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options leakage`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, opts = rec["results"], rec["options"]
probes, fresh, chance, n_test = r["probes"], r["fresh"], r["chance"], r["n_test"]

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
rows = []
for name in r["datasets"]:
    for role in r["roles"]:
        p = probes[name][role]
        rows.append(
            {
                "trained on": name,
                "features of": role,
                "model clean acc. (%)": 100 * r["clean_acc"][role],
                "probe train acc. (%)": 100 * p["train_acc"],
                "test acc. (%)": 100 * p["test_acc"],
                "predicts y + 1 (%)": 100 * p["shifted"],
            }
        )
    b = fresh["best"][name]
    rows.append(
        {
            "trained on": name,
            "features of": "fresh ResNet-18 (all layers)",
            "model clean acc. (%)": None,
            "probe train acc. (%)": 100 * b["final_train_acc"],
            "test acc. (%)": 100 * b["final_acc"],
            "± s.e. (seeds)": 100 * grid.spread(b, n_test),
            "predicts y + 1 (%)": None,
        }
    )
page.glue_values(
    **{
        "table_I-T4": pd.DataFrame(rows).set_index(["trained on", "features of"]).style.format(precision=1, na_rep="-"),
        "sizes": ", ".join(f"{n}: {s:,} images" for n, s in r["sizes"].items()),
        "chance": f"{100 * chance:.1f}",
        "se2": f"{200 * claims.binomial_se(chance, n_test):.1f}",
        "budget": constructed.budget_note(r["eps_scale"]),
        "probe": f"{opts['probe_steps']} full-batch Adam steps (learning rate {opts['probe_lr']:g}, weight decay "
        f"{opts['probe_weight_decay']:g}) on standardised features",
    }
)

# %% [markdown]
# ```{glue:table} table_I-T4
# :name: I-T4
#
# **I-T4 Leakage probes.** Linear probes on frozen penultimate features, trained on D_univ and on
# the cyclic-label D_univ, tested on the clean test set with the true labels; "predicts y + 1" is
# the share of test images the probe assigns to the class after their own (the cyclic label).
# Last row of each block: a fresh ResNet-18 trained on the same data (best of the grid; its
# train accuracy in the probe column).
# ```
#
# Training sets: {glue:text}`sizes`. {glue:text}`budget` Each probe is a multinomial logistic
# regression trained with {glue:text}`probe`. Chance is {glue:text}`chance`%; two standard
# errors of a chance-level accuracy are {glue:text}`se2` points.

# %% tags=["remove-input"]
fig, axes = plt.subplots(1, len(r["datasets"]), figsize=(9, 3.4), sharey=True, squeeze=False)
for ax, name in zip(axes[0], r["datasets"]):
    roles = r["roles"]
    ax.bar(roles, [100 * probes[name][x]["test_acc"] for x in roles], color="C0", label="test acc.")
    ax.bar(
        roles,
        [100 * probes[name][x]["shifted"] for x in roles],
        color="C3",
        alpha=0.5,
        width=0.4,
        label="predicts y + 1",
    )
    ax.axhline(100 * chance, color="gray", ls="--", label="chance")
    ax.set_title(name, fontsize=9)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
axes[0, 0].set_ylabel("share of clean test images (%)")
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
page.glue_values(**{"fig_I-T4": fig})
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-T4
# :name: I-T4-bars
#
# **I-T4 Leakage probes, as bars.** Test accuracy of each probe (blue) and the share it predicts
# as the class after the true one (red); dashed: chance.
# ```
#
# ## Verdict
#
# The paper's argument is an ordering, not a probe at chance (its own robust probe is above
# chance): the verdict sets the probes of the natural models other than D_univ's source (another
# seed, VGG16) and the fresh ResNet-18 trained on D_univ against the robust model's probe. The
# source's own probe is shown but not used: D_univ keeps only the images that the source model
# sends to their new label, so a probe on the source's features can read the source's own
# decision, and its accuracy is close to the source model's clean accuracy. The cyclic-label
# bound is the paper's from-scratch test, where robust features point one class away from the
# label. A robust probe trained on labels y + 1 predicting y + 1 says nothing about leakage
# (y + 1 is a function of y), so it is shown, not judged.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-T4", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
