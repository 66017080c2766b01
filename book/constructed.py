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
# # Constructed data sets
#
# Claims 3 and 4 of the paper are tested by training fresh models on data sets whose only
# useful feature for their labels is a perturbation (after Ilyas et al., 2019). This page builds
# them once for the Generalisation, Interpolation and Leakage sections, and shows what was kept.
#
# **Construction (PAPER.md).** Every training image x (label y) gets a target t, drawn uniformly
# at random and independently of y (exactly balanced: each class's images are dealt round-robin
# over the targets). **D_adv** stores (x + delta, t) with delta a standard targeted l2
# perturbation of x toward t made on the natural ResNet-18 (PGD, step eps/3, 10 steps).
# **D_univ** replaces delta by a universal perturbation toward t, one per base set of K images
# that share the target (the paper's per-batch perturbation), all base sets solved at once by the
# batched solver. Variants: linf; D_adv at eps/2; K-interpolation (K = 1 is D_adv); base sets
# from a single source class; cyclic labels t = y + 1.
#
# **What is kept.** A universal perturbation fools only part of its base set, so only the
# examples that the natural model sends to t are kept. Keeping all of them would make the labels
# depend on the original classes (the target t = y is always "reached", and some (class, target)
# pairs are easier than others), which lets real features back into the data set. So each
# source class keeps, in every target cell, as many examples as its scarcest target cell holds:
# the new labels are then exactly uniform and independent of the original labels. Every variant
# (but the cyclic one, which has a single target per class) is cut to the same per-cell counts,
# so they all have the same size and D_adv is subsampled to D_univ's size, as the paper asks.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # width of the natural ResNet-18 that makes the perturbations; None: the profile's
seed = None  # seed of the natural model, the targets, the base sets and the cut; None: the profile's
n_source = None  # training images perturbed; None: the profile's (all of them for paper)
Ks = None  # K-interpolation base-set sizes; None: the profile's (paper: 1, 2, 4, 8, 16, 32, 256)
K_univ = None  # D_univ's base-set size; None: 256
restrict_K = None  # base-set size of the single-class variant (one of Ks); None: the profile's
eps_scale = None  # budgets are eps_scale x the threat model's; None: the profile's (smoke 3, paper 1)
solver = None  # universal solver overrides {"steps", "step", "max_batch"}; None: the profile's

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown
from myst_nb import glue

from nrf import report
from nrf.sections import constructed as section

params = dict(data=data, width=width, seed=seed, n_source=n_source, Ks=Ks, K_univ=K_univ, restrict_K=restrict_K,
              eps_scale=eps_scale, solver=solver)
out = section.run(profile, **params)
cfg, train_data, stats, opts = out["cfg"], out["train"], out["stats"], out["opts"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# {glue:text}`setup`

# %% tags=["remove-cell"]
stamp = report.stamp(cfg, train_data)
univ, adv = stats["univ"], stats["adv"]
glue("setup", (
    f"The perturbations are made on the natural ResNet-18 ({100 * out['natural_acc']:.1f}% clean test accuracy) "
    f"for {len(out['source']):,} training images; the threat model is {cfg['norm']} eps = {cfg['eps']:g}"
    + (f", and this profile perturbs with {opts['eps_scale']:g} times that budget (and linf "
       f"{opts['eps_scale']:g} x 8/255): its weak model's universal perturbations at the paper's budget fool too few "
       f"images in the hard (class, target) cells for the exact balancing to keep a usable data set."
       if opts["eps_scale"] != 1 else ", as in the paper.")
    + f" Universal perturbations: {opts['solver']['steps']} full-batch steps of {opts['solver']['step']:g} eps."),
    display=False)
rows = []
for name, s in stats.items():
    v = s["variant"]
    rows.append({"data set": name, "perturbation": "standard" if v["kind"] == "adv" else "universal",
                 "norm": v["norm"], "eps": f"{v['eps']:.3g}", "base set": v["source"],
                 "K (mean)": f"{s['base_size']:.1f}", "built": s["built"], "fooled (%)": 100 * s["fooled"],
                 "kept": s["kept"], "kept (%)": 100 * s["kept"] / s["built"],
                 "max |P(t|y) - 1/C| (pts)": None if s["max_gap"] is None else 100 * s["max_gap"]})
table = pd.DataFrame(rows).set_index("data set")
glue("table_sets", table.style.format(precision=1, na_rep="- (t = y + 1)"), display=False)
glue("univ_fooled", 100 * univ["fooled"], display=False)
glue("univ_kept", 100 * univ["kept"] / univ["built"], display=False)
glue("adv_fooled", 100 * adv["fooled"], display=False)
glue("size", univ["kept"], display=False)
glue("max_gap", 100 * max(s["max_gap"] for n, s in stats.items() if n != section.CYCLIC), display=False)
hardest = univ["fooled_by_target"].argmin().item()
glue("hardest", f"{train_data.classes[hardest]} ({100 * univ['fooled_by_target'][hardest]:.0f}% fooled)",
     display=False)

# %% [markdown]
# ```{glue:figure} table_sets
# :name: constructed-sets
#
# **Constructed data sets.** Every variant: how it was perturbed, how many training images were
# perturbed (built), the share the natural model sends to the target (fooled), and how many
# examples the balanced cut keeps. The last column is the largest gap, over source classes y and
# targets t, between the share of class y's kept examples labelled t and 1/C: zero means the
# new labels are uniform and independent of the original ones.
# ```
#
# D_univ's universal perturbations send {glue:text}`univ_fooled:.1f`% of their base sets to the
# target (standard perturbations: {glue:text}`adv_fooled:.1f`%); the hardest target is
# {glue:text}`hardest`. After the balanced cut D_univ keeps {glue:text}`univ_kept:.1f`% of the
# images it perturbed, {glue:text}`size` examples, and every variant but the cyclic one has that
# size. The largest gap from independent, uniform labels in any of them is
# {glue:text}`max_gap:.1f` percentage points.

# %% tags=["remove-input"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
x = torch.arange(len(train_data.classes))
for i, name in enumerate(["adv", "univ", "univ-linf", section.CYCLIC]):
    axes[0].bar(x + 0.2 * (i - 1.5), 100 * stats[name]["fooled_by_target"], width=0.2, label=name)
axes[0].set(xticks=x.tolist(), ylabel="fooled (%)", title="Share sent to the target, per target class")
axes[0].set_xticklabels(train_data.classes, rotation=45, ha="right", fontsize=8)
axes[0].legend(fontsize=8)
image = axes[1].imshow(univ["table"].numpy(), cmap="viridis")
axes[1].set(xticks=x.tolist(), yticks=x.tolist(), xlabel="new label t", ylabel="original class y",
            title="D_univ kept examples per (y, t)")
axes[1].set_xticklabels(train_data.classes, rotation=45, ha="right", fontsize=8)
axes[1].set_yticklabels(train_data.classes, fontsize=8)
fig.colorbar(image, ax=axes[1], label="examples")
fig.suptitle(stamp, fontsize=9)
glue("fig_balance", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_balance
# :name: constructed-balance
#
# **Constructed data sets: what the filter removes and what the cut keeps.** Left: the share of
# the images perturbed toward each target that the natural model sends there, before the cut.
# Right: D_univ's kept examples per original class and new label (a constant row per class:
# labels independent of the original classes).
# ```

# %% tags=["remove-input"]
show = ["adv", "univ", section.CYCLIC]
fig, axes = plt.subplots(len(show), 6, figsize=(9, 1.8 * len(show)))
for row, name in zip(axes, show):
    ex = out["examples"][name]
    for j in range(3):
        original, perturbed = ex["x"][j].float() / 255, ex["perturbed"][j].float()
        row[2 * j].imshow(original.permute(1, 2, 0).numpy())
        row[2 * j].set_title(f"{name}: original", fontsize=7)
        row[2 * j + 1].imshow(perturbed.permute(1, 2, 0).clamp(0, 1).numpy())
        row[2 * j + 1].set_title(f"label {train_data.classes[int(ex['t'][j])]}", fontsize=7)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"Examples of kept images and their new labels ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_examples", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_examples
# :name: constructed-examples
#
# **Constructed data sets: examples.** Training images and their perturbed copies with the new
# label, as stored, for D_adv, D_univ and the cyclic D_univ.
# ```
