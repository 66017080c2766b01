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
# (transfer)=
# # Transfer
#
# **Claim** ({ref}`claim 3 <claim-3>` of {cite}`park2021distinctive`, its second half). Universal perturbations carry less non-robust
# signal than standard (per-image) adversarial perturbations; one sign of it: they also transfer
# less between models.
#
# **Test (I-F6).** Test images are perturbed on the natural ResNet-18 (the source) in two ways,
# at the same budget: a standard perturbation per image (targeted PGD, 10 steps of eps/3, no
# restarts) toward a target t, and the universal perturbation toward t that the other Part I
# sections use, added to the image. Counted as the paper counts: for each target t the
# denominator is the perturbed test images whose label is not t and that the source sends to
# t (the **kept** images); the transfer rate is the share of those that a second natural
# ResNet-18 (another seed) and a VGG16 also send to t. Every universal perturbation is tried on
# every perturbed image, so its denominator is all images of another label that it sends to t.
# A standard perturbation is made for one image and one target, so each image gets one target,
# drawn at random (seeded) among the targets other than its label: about a tenth of the images
# per target. Aiming every image at every target would give nine times the support for nine
# times the gradient work; the pooled rates (all targets' counts summed) are the paper's tally,
# the per-target denominators are shown so that small supports are visible, and the verdict
# pairs the two kinds on the same images (below).
#
# Two references. **Chance**: the share of the same kept images that the other model already
# predicts as t on the clean image; a perturbation that transferred nothing would score about
# that. **Fresh transfer**: the transfer rate among the kept images that the other model does
# *not* already call t, a rate that chance cannot explain.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nrf import page, reported, uaps
from nrf.sections import transfer as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options transfer`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r = rec["results"]
std, uni = r["standard"], r["universal"]
KINDS = {"standard": ("C0", std), "universal": ("C1", uni)}
NAMES = uaps.ROLE_NAMES


def values(xs):
    """A record's list as floats (an undefined rate is stored as null)."""
    return np.array([np.nan if v is None else v for v in xs], dtype=float)


page.glue_values(
    threat=f"{r['norm']}, eps = {page.eps_text(r['eps'])}",
    scope=f"{r['n_test']:,} of the {r['n_test_all']:,} test images"
    + ("" if r["n_test"] == r["n_test_all"] else " (the paper perturbs all of them)"),
    n_targets=len(r["targets"]),
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# Threat model: {glue:text}`threat`. Perturbed: {glue:text}`scope`, toward
# {glue:text}`n_targets` targets. The models and how often the source takes each kind of
# perturbation to its target:

# %% tags=["remove-input"]
models = pd.DataFrame(
    [
        {"model": NAMES[role], "role": "source" if role == r["source"] else "other", "clean test acc. (%)": 100 * a}
        for role, a in r["clean_acc"].items()
    ]
).set_index("model")
attempts = pd.DataFrame(
    [
        {
            "perturbation": kind,
            "attempts": k["pooled_attempts"],
            "sent to t by the source (%)": 100 * k["source_rate"],
            "kept": k["pooled_kept"],
            "kept per target": f"{min(k['kept'])} to {max(k['kept'])}",
        }
        for kind, (_, k) in KINDS.items()
    ]
).set_index("perturbation")
page.glue_values(table_models=models.style.format(precision=1), table_attempts=attempts.style.format(precision=1))

# %% [markdown]
# ```{glue:table} table_models
# :name: transfer-models
#
# The source and the two models the perturbations are carried to, with their clean test
# accuracy (the robust-accuracy table is {ref}`I-T7 <I-T7>` on {ref}`models`).
# ```
#
# ```{glue:table} table_attempts
# :name: transfer-attempts
#
# Attempts (a standard perturbation: one per image whose label is not its target; a universal
# perturbation: every image of another label, for every target), the share the source sends to
# the target, and the kept images: the denominators of I-F6.
# ```

# %% tags=["remove-input"]
labels = ["all"] + [r["classes"][t] for t in r["targets"]]
x = np.arange(len(labels), dtype=float)
x[1:] += 0.6  # a gap between the pooled group and the targets
bar = 0.38
fig, axes = plt.subplots(len(r["others"]), 1, figsize=(8, 3.2 * len(r["others"]) + 0.6), sharex=True, squeeze=False)
for ax, role in zip(axes[:, 0], r["others"]):
    for j, (kind, (colour, k)) in enumerate(KINDS.items()):
        rate = np.r_[k["pooled"][role], values(k["rate"][role])]
        chance = np.r_[k["pooled_chance"][role], values(k["chance"][role])]
        kept = np.r_[k["pooled_kept"], k["kept"]]
        pos = x + (j - 0.5) * bar
        se = np.sqrt(rate * (1 - rate) / np.maximum(kept, 1))
        ax.bar(
            pos,
            100 * np.nan_to_num(rate),
            bar,
            yerr=100 * np.nan_to_num(se),
            color=colour,
            capsize=2,
            error_kw={"lw": 0.8},
            label=f"{kind} (bar: transfer rate, ± binomial s.e.)",
        )
        ax.hlines(
            100 * chance,
            pos - bar / 2,
            pos + bar / 2,
            color="black",
            lw=1.6,
            label="chance: already t on the clean image" if j == 0 else None,
        )
    ax.set(ylabel="sent to t as well (%)", ylim=(0, 100), title=f"transfer to the {NAMES[role]}")
    ax.title.set_fontsize(11)
handles, names = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, names, fontsize=9, loc="lower center", ncol=2)
axes[-1, 0].set_xticks(x)
axes[-1, 0].set_xticklabels(labels, rotation=35, ha="right", fontsize=10)
fig.suptitle(
    f"Transfer from the natural ResNet-18 ({r['norm']} eps={page.eps_text(r['eps'])}; profile "
    f"{rec['options']['profile']})",
    fontsize=10,
)
fig.tight_layout(rect=(0, 0.08, 1, 1))
page.glue_values(fig_transfer=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_transfer
# :name: I-F6
#
# **I-F6 Transfer.** Of the perturbed test images that the source ResNet-18 sends to the target
# t (and whose label is not t), the share that the other model also sends to t: standard
# perturbations (blue) and universal ones (orange), pooled over all targets ("all") and per
# target, with the binomial standard error. Black ticks: the chance reference, the share of the
# same images that the other model already predicts as t unperturbed. Each bar's denominator
# (kept images) is in {ref}`the table below <I-F6-table>`.
# ```

# %% tags=["remove-input"]
rows = {}
for kind, (_, k) in KINDS.items():
    rows[(kind, "kept")] = [k["pooled_kept"], *k["kept"]]
    for role in r["others"]:
        rows[(kind, f"{NAMES[role]} (%)")] = [100 * k["pooled"][role], *(100 * values(k["rate"][role]))]
        rows[(kind, f"chance {NAMES[role]} (%)")] = [100 * k["pooled_chance"][role], *(100 * values(k["chance"][role]))]
        rows[(kind, f"fresh {NAMES[role]} (%)")] = [
            100 * k["pooled_fresh"][role],
            *(100 * values(k["fresh_rate"][role])),
        ]
# Targets as columns, measurements as rows: eleven short columns fit the page, fourteen long ones did not.
table = pd.DataFrame(rows, index=pd.Index(labels, name="target")).T
page.glue_values(table_counts=table.style.format(precision=1, na_rep="-"))

# %% [markdown]
# ```{glue:table} table_counts
# :name: I-F6-table
#
# **I-F6 Transfer, the counts.** Per target and pooled ("all"): the kept images (the
# denominator) and, for each other model, the transfer rate, its chance reference and the fresh
# transfer rate (among the kept images it does not already call t), for standard and universal
# perturbations.
# ```
#
# ## Verdict
#
# The paper's tally keeps different images for the two kinds: a universal perturbation is kept
# only on the images it can move, which can be ones that already lean toward t and that other
# models may call t unperturbed, while a standard perturbation is made for its own image. The
# verdict therefore compares the two kinds on the same (image, target) pairs: each image with
# the target its standard perturbation aimed at, kept where both its standard perturbation and
# the universal perturbation toward that target send it to t on the source. On each other model
# it compares the two kinds' transfer rates on those pairs, pair by pair (McNemar's test, on the
# pairs where exactly one kind transfers). The tally, pooled over the kept images of each kind, is
# shown beside it and in the tables above; the fresh rates (among the kept images the other model does not already call t) show how much of
# the tally chance explains.
# Where the models are far below the paper's accuracy the decisions of the models are far from
# those of trained ones (a weak model also tends to call many images by a few classes, which
# raises the chance references): the verdict then shows the counting at work, and the paper
# profile tests the claim.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-F6", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
