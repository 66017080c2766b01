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
# (locality)=
# # Locality
#
# **Claim** ({ref}`claim 1 <claim-1>` of {cite}`park2021distinctive`). The attack signal of a universal perturbation
# is local: some
# of its patches carry much more of it than others, and those are the recognisable ones.
#
# **Test (I-F3, I-F14, I-F15).** For every target class we take the universal perturbation of
# the natural ResNet-18 (the same perturbations as the Gallery), cut random square patches out
# of it and zero everything else. The side of a patch is the paper's 80/224 of the image side
# (11 px on 32 px CIFAR-10). For l2, every patch is rescaled to the largest patch norm of its
# perturbation, so that a patch wins by what it contains and not by how much of the budget it
# happened to hold; linf patches are used as cut. Each patch alone is then scored by its attack
# success rate (ASR: the share of test images it sends to the target, images already predicted
# as the target included, so an ineffective patch scores the chance level). Patches differ by
# chance alone, since each is scored on a finite set of images; the claim is that they differ
# by much more. Finally we ask whether a patch's ASR simply follows its norm before rescaling
# (where the solver put its budget), with a rank correlation.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from nrf import options, page, reported
from nrf.attacks import visualise
from nrf.sections import locality as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options locality`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, t, o = rec["results"], rec["tensors"], rec["options"]
classes, targets, by_norm, size = r["classes"], r["targets"], r["norms"], r["patch_size"]
main = by_norm[r["norm"]]
paper = options.resolve(section.OPTIONS, "paper")
page.glue_values(
    threat=f"{r['norm']}, eps = {page.eps_text(main['eps'])}",
    clean_acc=f"{100 * r['clean_acc']:.1f}%",
    sizes=f"{r['n_patches']} patches of {size} x {size} pixels (the same random corners for every target), each "
    f"scored on {r['n_eval']:,} of the {r['n_test']:,} test images; perturbations solved on a base set of "
    f"{o['base_size']:,} training images",
    paper_sizes=f"{paper['n_patches']} patches scored on "
    f"{'every test image' if paper['n_eval'] is None else paper['n_eval']}, a base set of "
    f"{paper['base_size']:,}",
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# Natural ResNet-18 (clean test accuracy {glue:text}`clean_acc`), threat model
# {glue:text}`threat`: {glue:text}`sizes` (the paper profile: {glue:text}`paper_sizes`).


# %% tags=["remove-input"]
def shown_patch(delta, corner, size):
    """The perturbation's ±3σ picture inside the patch, mid-grey (zero) outside: the patch is
    shown at the colour scale of the whole perturbation (rescaling only changes contrast)."""
    vis, out = visualise(delta), np.full((delta.shape[-2], delta.shape[-1], 3), 0.5)
    top, left = corner
    out[top : top + size, left : left + size] = vis[top : top + size, left : left + size]
    return out


def outline(ax, corner, colour):
    ax.add_patch(Rectangle((corner[1] - 0.5, corner[0] - 0.5), size, size, fill=False, lw=1.5, ec=colour))


def patch_row(axes, nm, row, with_names):
    """One target: its perturbation (best patches outlined green, worst red), 3 best, 2 worst patches."""
    p, delta = by_norm[nm], t[f"deltas_{nm}"][row]
    asr = p["asr"][row]
    order = sorted(range(len(asr)), key=lambda i: -asr[i])  # stable: ties keep corner order
    picks = [("best", i, k) for i, k in enumerate(order[:3])] + [("worst", i, k) for i, k in enumerate(order[::-1][:2])]
    axes[0].imshow(visualise(delta))
    axes[0].set_title(("whole\n" if with_names else "") + f"ASR {100 * p['full'][row]:.0f}%", fontsize=9)
    axes[0].set_ylabel(classes[targets[row]], fontsize=9)
    for ax, (kind, i, k) in zip(axes[1:], picks):
        colour = "lime" if kind == "best" else "red"
        outline(axes[0], p["corners"][k], colour)
        ax.imshow(shown_patch(delta, p["corners"][k], size))
        outline(ax, p["corners"][k], colour)
        ax.set_title((f"{kind} {i + 1}\n" if with_names else "") + f"ASR {100 * asr[k]:.0f}%", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


row = targets.index(r["target"])
fig, axes = plt.subplots(1, 6, figsize=(9, 2.2), layout="constrained")
patch_row(axes, r["norm"], row, with_names=True)
fig.suptitle(
    f"I-F3 Locality: target {classes[r['target']]}, {r['norm']} eps={page.eps_text(main['eps'])}, "
    f"chance {100 * main['chance'][row]:.0f}%",
    fontsize=10,
)
figures = {"fig_I-F3": fig}
for nm, fig_id in (("l2", "I-F14"), ("linf", "I-F15")):
    if nm in by_norm:
        fig, axes = plt.subplots(
            len(targets), 6, figsize=(7.5, 1.2 * len(targets) + 0.7), squeeze=False, layout="constrained"
        )
        for k in range(len(targets)):
            patch_row(axes[k], nm, k, with_names=k == 0)
        fig.suptitle(f"{fig_id} Locality, all classes: {nm} eps={page.eps_text(by_norm[nm]['eps'])}", fontsize=10)
    else:
        fig, ax = plt.subplots(figsize=(6, 0.5))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            f"{fig_id} ({nm}) is not computed at this setting: set norm={nm} or extras=true",
            ha="center",
            va="center",
        )
    figures[f"fig_{fig_id}"] = fig
page.glue_values(**figures)
for fig in figures.values():
    plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-F3
# :name: I-F3
#
# **I-F3 Locality.** Left: the universal perturbation for one target (±3σ visualisation) and its
# ASR on the scored test images. Then its three best and two worst patches (outlined green and
# red on the left), each shown at the perturbation's own colour scale, zero (grey) elsewhere,
# with the ASR of the patch alone (l2: after rescaling to the largest patch norm). The chance
# level is in the title.
# ```
#
# ```{glue:figure} fig_I-F14
# :name: I-F14
#
# **I-F14 Locality, all classes (l2).** As I-F3, one row per target class.
# ```
#
# ```{glue:figure} fig_I-F15
# :name: I-F15
#
# **I-F15 Locality, all classes (linf).** As I-F14 for the linf threat model (eps 8/255), patches
# not rescaled.
# ```

# %% tags=["remove-input"]
table = pd.DataFrame(
    [
        {
            "norm": nm,
            "target": classes[c],
            "whole (%)": 100 * p["full"][k],
            "best patch (%)": 100 * max(p["asr"][k]),
            "median patch (%)": 100 * float(np.median(p["asr"][k])),
            "worst patch (%)": 100 * min(p["asr"][k]),
            "chance (%)": 100 * p["chance"][k],
            "rank corr. with norm": np.nan if p["rho"][k] is None else p["rho"][k],
        }
        for nm, p in by_norm.items()
        for k, c in enumerate(targets)
    ]
).set_index(["norm", "target"])
styled = table.style.format(precision=1, na_rep="n/a").format("{:.2f}", subset=["rank corr. with norm"], na_rep="n/a")

fig, axes = plt.subplots(1, len(by_norm), figsize=(4.6 * len(by_norm) + 1.2, 3.8), squeeze=False, layout="constrained")
for ax, (nm, p) in zip(axes[0], by_norm.items()):
    for k, c in enumerate(targets):
        rel = np.array(p["norms"][k]) / max(p["norms"][k])
        ax.scatter(
            rel,
            100 * (np.array(p["asr"][k]) - p["chance"][k]),
            s=14,
            alpha=0.75,
            label=classes[c],
            color=plt.cm.tab10(c % 10),
        )
    ax.axhline(0, color="grey", ls="--", lw=1, label="chance")
    rho = [v for v in p["rho"] if v is not None]
    ax.set(
        xlabel="patch l2 norm before rescaling / largest patch norm",
        ylabel="patch ASR - chance (points)",
        title=f"{nm} eps={page.eps_text(p['eps'])}" + (f": Spearman rho mean {np.mean(rho):.2f}" if rho else ""),
    )
axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
page.glue_values(table_locality=styled, fig_norm=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:table} table_locality
# :name: locality-table
#
# **I-F14 / I-F15 in numbers.** Per target: ASR of the whole perturbation and of its best, median
# and worst patch on the scored test images, the chance level on the same images, and the
# Spearman rank correlation between a patch's ASR and its l2 norm before rescaling (n/a when
# every patch scored the same).
# ```
#
# ```{glue:figure} fig_norm
# :name: locality-norm
#
# **I-F14 / I-F15: does attack signal follow the norm?** Every patch of every target: its ASR
# above the target's chance level against its l2 norm before rescaling (relative to the largest
# patch of the same perturbation); chance is dashed. A strong rank correlation would mean that a
# patch wins because the solver spent more of the budget there; a weak one, that the content of
# the patch matters at equal norm.
# ```
#
# ## Verdict
#
# The paper did not run this analysis on CIFAR-10 (its Appendix D: the CIFAR-10 perturbations
# are "more global"); on CIFAR-10 the book tests an extension of the claim. The best of many
# patches always beats the worst, by chance alone: each patch's ASR is measured on a finite set
# of images. And every patch of a target is scored on the same images, so their ASRs are not
# independent samples: the test pairs them image by image. Cochran's Q asks whether the patches'
# hits on the same images differ more than they would if every patch carried the same signal
# (under that null Q follows a chi-square law with patches - 1 degrees of freedom). Whether the
# best patches are also the most *recognisable* parts of the perturbations cannot be measured
# here: compare the green and red patches in I-F3 and I-F14 and judge.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-F3", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
