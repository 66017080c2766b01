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
# (scaling)=
# # Scaling
#
# **Claim** ({ref}`claim 2 <claim-2>` of {cite}`park2021distinctive`). Universal perturbations rely on non-robust
# features, not on
# robust features that leaked into them: scaling a universal perturbation up raises its success
# on natural models, but a robust model does not react to it; a universal perturbation computed
# on the robust model itself, at a much larger budget, does move the robust model.
#
# **Test (I-F5).** The universal perturbation of every target class, made on the natural
# ResNet-18 at the budget eps, is multiplied by s and its attack success rate (ASR) measured on
# that model, on a second natural ResNet-18 (another seed) and on the adversarially trained one.
# (a) whole perturbations, plus the positive control: a universal perturbation made on the
# robust model at `factor` times eps, measured on the robust and the natural model; (b) the
# same for each perturbation's most and least effective patch, as scored in the Locality
# section; (c) pictures of those patches and of the robust model's perturbations. The
# horizontal axis is the norm of the perturbation in units of eps, so the robust model's
# perturbation (made at `factor` eps) is scaled by s / factor and every curve compares
# perturbations of the same size; s = 0 is no perturbation, i.e. the chance level (the share of
# images the model predicts as the target anyway).

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nrf import options, page, reported
from nrf.attacks import visualise
from nrf.sections import scaling as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options scaling`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, t, o = rec["results"], rec["tensors"], rec["options"]
grid, factor, classes, targets, p = r["grid"], r["factor"], r["classes"], r["targets"], r["patches"]
ROLE = {"natural": ("natural", "C0"), "natural_seed1": ("natural, other seed", "C1"), "robust": ("robust", "C3")}
paper = options.resolve(section.OPTIONS, "paper")


def passes(k):
    return f"{k} solver pass{'es' if k != 1 else ''}"


page.glue_values(
    models=f"natural ResNet-18 (clean test accuracy {100 * r['clean_acc']['natural']:.1f}%), a second one with "
    f"another seed ({100 * r['clean_acc']['natural_seed1']:.1f}%) and the robust one "
    f"({100 * r['clean_acc']['robust']:.1f}% clean, {100 * r['robust_acc']:.1f}% under {r['attack']['norm']} "
    f"PGD at eps {page.eps_text(r['attack']['eps'])})",
    setting=f"Threat model: {r['norm']}, eps = {page.eps_text(r['eps'])}. Each of the {len(targets)} targets' "
    f"perturbations is measured on {r['n_eval']:,} of the {r['n_test']:,} test images at s = "
    f"{', '.join(f'{s:g}' for s in grid)} times eps; the patches are the best and worst of {p['n_patches']} "
    f"random {p['size']} px squares, scored on {p['n_eval']:,} test images. The robust model's perturbations "
    f"are solved on {o['robust_base_size']:,} training images in {passes(o['robust_solver_epochs'])}, the "
    f"natural model's on {o['base_size']:,} in {passes(o['solver_epochs'])}.",
    paper_sizes=f"measures on {'every test image' if paper['scale_eval'] is None else paper['scale_eval']} at "
    f"{len(paper['scales'])} scales up to {max(paper['scales']):g}, and solves both kinds of perturbation "
    f"on {paper['base_size']:,} training images",
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# The three models: {glue:text}`models`. {glue:text}`setting` The paper profile
# {glue:text}`paper_sizes`.

# %% tags=["remove-input"]
x = np.array([0.0] + grid)


def plot(ax, kind, role, style="-", label=None):
    """Mean over targets of the ASR curve, s = 0 (chance) prepended, with error bars of one standard
    error of that mean (a band of the spread across targets would hide the curves)."""
    c = 100 * np.concatenate([np.array(r["chance"][role])[:, None], np.array(r["asr"][kind][role])], 1)
    mean, se = c.mean(0), c.std(0, ddof=1) / np.sqrt(len(c))
    name, colour = ROLE[role]
    ax.errorbar(
        x, mean, yerr=se, fmt=style, marker="o", ms=3, capsize=2, lw=1.2, color=colour, label=label or f"on {name}"
    )


def chance_lines(ax, roles):
    for role in roles:
        ax.axhline(100 * np.mean(r["chance"][role]), color=ROLE[role][1], ls=":", lw=1)


fig, ax = plt.subplots(figsize=(7, 5.2))
for role in ROLE:
    plot(ax, "universal", role, label=f"natural model's perturbation, on {ROLE[role][0]}")
for role in ("robust", "natural"):
    plot(ax, "robust", role, style="--", label=f"robust model's perturbation ({factor:g} eps), on {ROLE[role][0]}")
chance_lines(ax, ROLE)
for s, what in ((1, "natural's as made"), (factor, "robust's as made")):
    ax.axvline(s, color="grey", lw=0.8)
    ax.text(s, 101, f" {what}", fontsize=7, color="grey", rotation=90, va="top", ha="right")
ax.set(
    xlabel="perturbation norm / eps (the scale s)",
    ylabel="ASR (%)",
    ylim=(0, 102),
    title=f"I-F5 (a) Scaled universal perturbations ({r['norm']} eps={page.eps_text(r['eps'])})",
)
ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
fig.tight_layout()
page.glue_values(fig_scaling=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_scaling
# :name: I-F5a
#
# **I-F5 (a) Scaling.** ASR of s times each target's universal perturbation, mean over targets
# with error bars of one standard error of the mean across targets. Solid: made on the natural model, measured
# on it, on the second natural model and on the robust model. Dashed: made on the robust model
# at `factor` eps and scaled to the same norm, measured on the robust and the natural model.
# Dotted: each model's chance level.
# ```

# %% tags=["remove-input"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
for ax, kind in zip(axes, ("best", "worst")):
    for role in ROLE:
        plot(ax, kind, role)
    chance_lines(ax, ROLE)
    ax.axvline(1, color="grey", lw=0.8)
    ax.set(xlabel="scale s (1: the patch as scored)", title=f"{kind} patch of each target")
axes[0].set(ylabel="ASR (%)", ylim=(0, 102))
axes[0].legend(fontsize=8)
fig.suptitle(f"I-F5 (b) Scaled patches ({p['size']} px)", fontsize=9)
fig.tight_layout()
page.glue_values(fig_patches=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_patches
# :name: I-F5b
#
# **I-F5 (b) Scaling single patches.** The same curves for each target's most (left) and least
# (right) effective patch of the natural model's perturbation, cut out (zero elsewhere) and, for
# l2, rescaled to the largest patch norm, exactly as {ref}`locality` scores them; s = 1 is
# that patch. Mean over targets, with error bars of one standard error across targets; dotted: chance.
# ```


# %% tags=["remove-input"]
def crop(delta, corner):
    top, left = corner
    return delta[:, top : top + p["size"], left : left + p["size"]]


rows = [
    ("natural model's\nperturbation", lambda i: t["deltas"][i], None),
    ("best patch\n(zoom)", lambda i: crop(t["deltas"][i], p["best_corner"][i]), "best_asr"),
    ("worst patch\n(zoom)", lambda i: crop(t["deltas"][i], p["worst_corner"][i]), "worst_asr"),
    (f"robust model's\nperturbation ({factor:g} eps)", lambda i: t["robust_deltas"][i], None),
]
n = len(targets)
fig, axes = plt.subplots(
    len(rows), n, figsize=(1.3 * n + 2.2, 1.4 * len(rows) + 0.6), squeeze=False, layout="constrained"
)
for k, (label, pick, score) in enumerate(rows):
    for i, c in enumerate(targets):
        ax = axes[k, i]
        ax.imshow(visualise(pick(i)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if k == 0:
            ax.set_title(classes[c], fontsize=10)
        if score:  # inside its own picture, so that it cannot be read as the next row's
            ax.text(
                0.5,
                0.03,
                f"ASR {100 * p[score][i]:.0f}%",
                transform=ax.transAxes,
                ha="center",
                va="bottom",
                fontsize=8,
                color="black",
                bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "lw": 0},
            )
        if i == 0:
            ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
fig.suptitle("I-F5 (c) Perturbations and patches, ±3σ", fontsize=9)
page.glue_values(fig_pictures=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_pictures
# :name: I-F5c
#
# **I-F5 (c) Pictures.** Per target (columns): the natural model's universal perturbation, its
# best and worst patch (zoomed, with the ASR the patch alone scored) and the robust model's
# universal perturbation at `factor` eps. Each picture is the ±3σ visualisation of its own
# values.
# ```

# %% tags=["remove-input"]
KIND = {
    "universal": "natural model's perturbation",
    "best": "its best patch",
    "worst": "its worst patch",
    "robust": f"robust model's perturbation ({factor:g} eps)",
}
marks = sorted({1.0, factor, max(grid)})
table = pd.DataFrame(
    [
        {
            "perturbation": KIND[kind],
            "model": ROLE[role][0],
            "chance (%)": 100 * section.chance(r, role)[0],
            **{f"s = {s:g} (%)": 100 * section.at(r, kind, role, s)[0] for s in marks},
        }
        for kind, by_role in r["asr"].items()
        for role in by_role
    ]
).set_index(["perturbation", "model"])
page.glue_values(table_scaling=table.style.format(precision=1))

# %% [markdown]
# ```{glue:table} table_scaling
# :name: I-F5-table
#
# **I-F5 in numbers.** Mean ASR over the targets at the budget (s = 1), at the robust model's
# budget (s = `factor`) and at the largest scale measured, with each model's chance level.
# ```
#
# ## Verdict
#
# Each criterion quotes the paper's sentence. That the robust model "does not react to any
# scaling" is an equivalence bound: the data must rule a reaction out, not merely fail to see
# one. Its own perturbation, made at `factor` times the budget, is the positive control: without
# it, a robust model that resists the natural perturbations would say nothing, as it might resist
# everything.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-F5", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
