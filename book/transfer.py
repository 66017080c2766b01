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
# # Transfer
#
# **Claim (PAPER.md, claim 3, its second half).** Universal perturbations carry less non-robust
# signal than standard (per-image) adversarial perturbations; one sign of it: they also transfer
# less between models.
#
# **Test (I-F6).** Test images are perturbed on the natural ResNet-18 (the source) in two ways,
# at the same budget: a standard perturbation per image (targeted PGD, 10 steps of eps/3, no
# restarts) toward a target t, and the universal perturbation toward t that the other Part I
# sections use, added to the image. Counted as PAPER.md says: for each target t the
# denominator is the perturbed test images whose label is not t and that the source sends to
# t; the transfer rate is the share of those that a second natural ResNet-18 (another seed) and
# a VGG16 also send to t. Every universal perturbation is tried on every perturbed image, so
# its denominator is all images of another label that it sends to t. A standard perturbation
# is made for one image and one target, so each image gets one target, drawn at random
# (seeded) among the targets other than its label: about a tenth of the images per target.
# Aiming every image at every target would give nine times the support for nine times the
# gradient work, which the smoke profile cannot afford; the pooled rates (all targets' counts
# summed) carry the verdict, and the per-target denominators are shown so that small supports
# are visible.
#
# Two references. **Chance**: the share of the same kept images that the other model already
# predicts as t on the clean image; a perturbation that transferred nothing would score about
# that. **Fresh transfer**: the transfer rate among the kept images that the other model does
# *not* already call t, a rate that chance cannot explain.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # base width of all three models; None: the profile's
epochs = None  # their training epochs; None: the profile's
seed = None  # seed of the source model (the second ResNet-18 uses seed + 1), of the image picks and targets
norm = None  # "l2" or "linf"; None: the profile's (l2)
eps = None  # perturbation budget; None: 1.0 for l2, 8/255 for linf
targets = None  # target classes (names or indices); None: all
n_test = None  # test images perturbed; None: the profile's (500 for smoke, all 10,000 for paper)

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from nrf import report
from nrf.sections import transfer as section

out = section.run(profile, data=data, width=width, epochs=epochs, seed=seed, norm=norm, eps=eps, targets=targets,
                  n_test=n_test)
cfg, train_data = out["cfg"], out["train"]
std, uni = out["standard"], out["universal"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
NAMES = {"natural": "source ResNet-18", "natural_seed1": "second ResNet-18 (other seed)", "vgg16": "VGG16"}
WEAK = 0.6  # clean accuracy below which a model is too weak to say much about the paper's models
acc = out["clean_acc"]
for role in NAMES:
    glue(f"acc_{role}", 100 * acc[role], display=False)
glue("threat", f"{out['norm']}, eps = {out['eps']:g}", display=False)
glue("n_test", f"{out['n_test']:,}", display=False)
glue("n_targets", len(out["targets"]), display=False)
glue("std_attempts", f"{std['pooled_attempts']:,}", display=False)
glue("uni_attempts", f"{uni['pooled_attempts']:,}", display=False)
glue("std_kept", f"{std['pooled_kept']:,}", display=False)
glue("uni_kept", f"{uni['pooled_kept']:,}", display=False)
glue("std_source", 100 * std["source_rate"], display=False)
glue("uni_source", 100 * uni["source_rate"], display=False)
glue("std_kept_range", f"{std['kept'].min().item()} to {std['kept'].max().item()}", display=False)
glue("uni_kept_range", f"{uni['kept'].min().item()} to {uni['kept'].max().item()}", display=False)
weak = {role: a for role, a in acc.items() if a < WEAK}
glue("weak_note", Markdown("" if not weak else (
    "**These models are too weak for the verdict to speak for the paper's:** "
    + ", ".join(f"the {NAMES[r]} reaches {100 * a:.1f}%" for r, a in weak.items())
    + f" clean test accuracy (below {100 * WEAK:.0f}%; the paper's CIFAR-10 models are trained to convergence). "
    "The decisions of such models are far from those of trained ones (a weak model also tends to call many "
    "images by a few classes, which raises the chance references), so what transfers between them need not "
    "transfer between trained models: this profile shows the counting at work; the paper profile tests the "
    "claim.")), display=False)

# %% [markdown]
# Source: the natural ResNet-18 ({glue:text}`acc_natural:.1f`% clean test accuracy); other models:
# a natural ResNet-18 with another seed ({glue:text}`acc_natural_seed1:.1f`%) and a natural VGG16
# ({glue:text}`acc_vgg16:.1f`%). Threat model: {glue:text}`threat`. Test images perturbed:
# {glue:text}`n_test`; targets: {glue:text}`n_targets`. The standard perturbations make
# {glue:text}`std_attempts` attempts (one per image of a label other than its target), of which the
# source sends {glue:text}`std_source:.1f`% to their target: {glue:text}`std_kept` kept images,
# {glue:text}`std_kept_range` per target. The universal perturbations make
# {glue:text}`uni_attempts` attempts (every image of another label, for every target) and send
# {glue:text}`uni_source:.1f`% to the target: {glue:text}`uni_kept` kept images,
# {glue:text}`uni_kept_range` per target.
#
# ```{glue:md} weak_note
# :format: myst
# ```

# %% tags=["remove-input"]
stamp = report.stamp(cfg, train_data)
labels = ["all"] + [out["classes"][t] for t in out["targets"]]
KIND = {"standard": ("C0", std), "universal": ("C1", uni)}


def bars(kind, role):
    """Transfer rate, chance and denominator for "all" (pooled) then each target."""
    k = KIND[kind][1]
    rate = np.r_[k["pooled"][role], k["rate"][role].numpy()]
    chance = np.r_[k["pooled_chance"][role], k["chance"][role].numpy()]
    return rate, chance, np.r_[k["pooled_kept"], k["kept"].numpy()]


x = np.arange(len(labels), dtype=float)
x[1:] += 0.6  # a gap between the pooled group and the targets
width_ = 0.38
fig, axes = plt.subplots(len(section.OTHERS), 1, figsize=(9, 3.3 * len(section.OTHERS)), sharex=True)
for ax, role in zip(axes, section.OTHERS):
    for j, kind in enumerate(KIND):
        rate, chance, kept = bars(kind, role)
        pos = x + (j - 0.5) * width_
        se = np.sqrt(rate * (1 - rate) / np.maximum(kept, 1))
        ax.bar(pos, 100 * np.nan_to_num(rate), width_, yerr=100 * np.nan_to_num(se), color=KIND[kind][0],
               capsize=2, error_kw={"lw": 0.8}, label=f"{kind} (bar: transfer rate, ± binomial s.e.)")
        ax.hlines(100 * chance, pos - width_ / 2, pos + width_ / 2, color="black", lw=1.6,
                  label="chance: already t on the clean image" if j == 0 else None)
        for p, top, n in zip(pos, 100 * np.nan_to_num(rate + se), kept):
            ax.text(p, top + 1.5, str(n), ha="center", va="bottom", fontsize=6, rotation=90, color="dimgrey")
    ax.set(ylabel="sent to t as well (%)", ylim=(0, 100), title=f"transfer to the {NAMES[role]}")
    ax.title.set_fontsize(9)
handles, names = axes[0].get_legend_handles_labels()
fig.legend(handles, names, fontsize=8, loc="lower center", ncol=3)
axes[-1].set_xticks(x)
axes[-1].set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
fig.suptitle(f"Transfer from the natural ResNet-18 ({out['norm']} eps={out['eps']:.3g}; {stamp})", fontsize=10)
fig.tight_layout(rect=(0, 0.04, 1, 1))
glue("fig_transfer", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_transfer
# :name: I-F6
#
# **I-F6 Transfer.** Of the perturbed test images that the source ResNet-18 sends to the target
# t (and whose label is not t), the share that the other model also sends to t: standard
# perturbations (blue) and universal ones (orange), pooled over all targets ("all") and per
# target, with the binomial standard error. Black ticks: the chance reference, the share of the
# same images that the other model already predicts as t unperturbed. The number above each bar
# is its denominator (kept images).
# ```

# %% tags=["remove-cell"]
rows = {}
for kind, (_, k) in KIND.items():
    rows[(kind, "kept")] = [k["pooled_kept"], *k["kept"].tolist()]
    for role in section.OTHERS:
        rows[(kind, f"{NAMES[role]} (%)")] = [100 * k["pooled"][role], *(100 * k["rate"][role]).tolist()]
        rows[(kind, f"chance {NAMES[role]} (%)")] = [100 * k["pooled_chance"][role],
                                                     *(100 * k["chance"][role]).tolist()]
table = pd.DataFrame(rows, index=pd.Index(labels, name="target"))
glue("table", table.style.format(precision=1, na_rep="-"), display=False)

# %% [markdown]
# ```{glue:figure} table
# :name: I-F6-table
#
# **I-F6 Transfer, the counts.** Per target and pooled ("all"): the kept images (the
# denominator) and the transfer rate to each other model with its chance reference, for standard
# and universal perturbations.
# ```

# %% tags=["remove-cell"]
Z = 2.0  # the difference must exceed two standard errors to count as more than noise
holds = {}
for role in section.OTHERS:
    c, f = out["compare"][role], out["compare_fresh"][role]
    holds[role] = c["z"] >= Z
    for name, value in {"std": c["standard"], "uni": c["universal"], "diff": c["diff"], "se": c["se"],
                        "std_chance": std["pooled_chance"][role], "uni_chance": uni["pooled_chance"][role],
                        "std_fresh": f["standard"], "uni_fresh": f["universal"], "fresh_diff": f["diff"],
                        "fresh_se": f["se"]}.items():
        glue(f"{role}_{name}", 100 * value, display=False)
    glue(f"{role}_z", c["z"], display=False)
    glue(f"{role}_fresh_z", f["z"], display=False)
    glue(f"{role}_wins", f"{c['wins']} of {c['compared']}", display=False)
    glue(f"{role}_n_fresh", f"{f['n_standard']:,} and {f['n_universal']:,}", display=False)


def says(role, c):
    """One model's finding in words."""
    if c["z"] >= Z:
        how = "less than standard ones"
    elif c["z"] <= -Z:
        how = "more than standard ones"
    else:
        how = "about as much as standard ones (the difference is within two standard errors)"
    return f"on the {NAMES[role]}, universal perturbations transfer {how}"


verdict = ("holds" if all(holds.values()) else "does not hold" if not any(holds.values()) else "holds only in part")
glue("verdict", f"{verdict} at this profile: " + "; ".join(says(r, out["compare"][r]) for r in section.OTHERS),
     display=False)
fresh = "; ".join(says(r, out["compare_fresh"][r]) for r in section.OTHERS)
glue("fresh_verdict", fresh, display=False)

# %% [markdown]
# ## Result
#
# Pooled over the targets, of the kept images the second ResNet-18 also sends to the target
# {glue:text}`natural_seed1_std:.1f`% of those perturbed by standard perturbations and
# {glue:text}`natural_seed1_uni:.1f`% of those perturbed by universal ones (chance
# {glue:text}`natural_seed1_std_chance:.1f`% and {glue:text}`natural_seed1_uni_chance:.1f`%); the
# VGG16 {glue:text}`vgg16_std:.1f`% and {glue:text}`vgg16_uni:.1f`% (chance
# {glue:text}`vgg16_std_chance:.1f`% and {glue:text}`vgg16_uni_chance:.1f`%). Standard minus
# universal: {glue:text}`natural_seed1_diff:.1f` points (standard error
# {glue:text}`natural_seed1_se:.1f`, z = {glue:text}`natural_seed1_z:.1f`) on the second ResNet-18,
# {glue:text}`vgg16_diff:.1f` points (standard error {glue:text}`vgg16_se:.1f`, z =
# {glue:text}`vgg16_z:.1f`) on the VGG16. Standard perturbations transfer more for
# {glue:text}`natural_seed1_wins` targets on the second ResNet-18 and {glue:text}`vgg16_wins` on
# the VGG16.
#
# **Verdict.** The criterion: on each other model, the pooled transfer rate of the standard
# perturbations exceeds that of the universal ones by more than two standard errors of the
# difference, sqrt(p_s (1 - p_s) / n_s + p_u (1 - p_u) / n_u), with p the pooled rates and n the
# pooled kept counts (a one-sided test at about the 2.5% level). The claim
# {glue:text}`verdict`. This error treats the kept images as independent; the universal
# outcomes come from only one perturbation per target, so their true spread is larger and the
# per-target bars in I-F6 are the check on it.
#
# **Beyond chance.** The kept images of the two kinds differ, and so do their chance references:
# a universal perturbation is kept only on the images it can move, which can be ones that
# already lean toward t and that other models may call t unperturbed, while a standard
# perturbation is made for its own image. Among the kept images that the other
# model does not already call t ({glue:text}`natural_seed1_n_fresh` for standard and universal
# on the second ResNet-18), the fresh transfer rates are {glue:text}`natural_seed1_std_fresh:.1f`%
# (standard) and {glue:text}`natural_seed1_uni_fresh:.1f`% (universal), difference
# {glue:text}`natural_seed1_fresh_diff:.1f` ± {glue:text}`natural_seed1_fresh_se:.1f` points; on
# the VGG16 ({glue:text}`vgg16_n_fresh`) {glue:text}`vgg16_std_fresh:.1f`% and
# {glue:text}`vgg16_uni_fresh:.1f`%, difference {glue:text}`vgg16_fresh_diff:.1f` ±
# {glue:text}`vgg16_fresh_se:.1f` points. By the same criterion, {glue:text}`fresh_verdict`.
