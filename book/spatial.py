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
# (spatial)=
# # Spatial invariance
#
# **Claim** ({ref}`claim 1 <claim-1>` of {cite}`park2021distinctive`). Universal perturbations keep working when they
# are translated,
# while standard (per-image) adversarial perturbations stop working after small shifts: the
# universal ones carry patterns that mean something wherever they sit in the image, the standard
# ones exploit the exact pixels of one image.
#
# **Test (I-F4, on CIFAR-10 I-F16).** Targeted standard perturbations (PGD, 10 steps of eps/3)
# are made for random test images toward random targets other than their label, and each is
# measured on its own image only. Targeted universal perturbations of the same norm (one per
# target and seed, each from its own base set of training images) are measured on a set of test
# images. Every perturbation is rolled by (i, j) pixels with wraparound (`torch.roll`) for every
# shift on a grid, and the attack success rate (ASR) is measured at each shift. The chance level
# is the ASR of no perturbation at all: the share of the images that the model already predicts
# as the target.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nrf import options, page, reported
from nrf.attacks import shift, visualise
from nrf.sections import spatial as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options spatial`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, t = rec["results"], rec["tensors"]
s = section.summary(r)
std, uni = s["standard"], s["universal"]
d = np.array(r["distances"])
paper = options.resolve(section.OPTIONS, "paper")
n_universal = len(r["universal"]["curves"])
page.glue_values(
    setting=f"The natural ResNet-18 (clean test accuracy {100 * r['clean_acc']:.1f}%) is attacked at {r['norm']} "
    f"eps = {page.eps_text(r['eps'])}. This page measured {r['n_standard']} standard perturbations and {n_universal} "
    f"universal ones ({len(r['seeds'])} per target for {len(r['targets'])} targets, each measured on "
    f"{r['n_eval']} test images) at {len(t['shifts'])} shifts, one every {r['stride']} px in each direction.",
    paper_sizes=f"{paper['n_standard']} standard perturbations, {paper['per_target']} universal ones per target on "
    f"{paper['n_eval']} test images and a shift every {paper['stride']} px",
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# {glue:text}`setting` The paper profile uses {glue:text}`paper_sizes`: the paper shifts every
# 4 px on 224 px images, about 2% of the side, which is 1 px on CIFAR-10.

# %% tags=["remove-input"]
axis, stride = np.array(r["axis"]), r["stride"]
# The paper's axes: i to the right, j up. The map's rows are torch.roll's row shift (down) and its
# columns the column shift (right), so the right shift is the column and the up shift minus the row.
extent = [axis[0] - stride / 2, axis[-1] + stride / 2, -axis[-1] - stride / 2, -axis[0] + stride / 2]
ticks = axis[:: max(1, len(axis) // 8)]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
for ax, (name, grid, count, chance) in zip(
    axes,
    (
        ("standard", t["standard_map"], f"{r['n_standard']} images", std["chance"]),
        ("universal", t["universal_map"], f"{n_universal} perturbations x {r['n_eval']} images", uni["chance"]),
    ),
):
    # Each map on its own colour scale (from 0 to its own maximum): on a shared one, the universal
    # map's range would be a single colour.
    image = ax.imshow(
        100 * grid.numpy(),
        cmap="viridis",
        vmin=0,
        vmax=max(100 * grid.max().item(), 1),
        extent=extent,
        origin="upper",
        interpolation="nearest",
    )
    ax.set(
        title=f"{name} ({count})",
        xlabel="i: shift to the right (px)",
        ylabel="j: shift up (px)",
        xticks=ticks,
        yticks=np.sort(-ticks),
    )
    bar = fig.colorbar(image, ax=ax, shrink=0.85, label="ASR (%); white line: chance")
    bar.ax.axhline(100 * float(np.mean(chance)), color="white", lw=2.5)
fig.suptitle(f"I-F16 ASR of shifted perturbations ({r['norm']} eps={page.eps_text(r['eps'])})", fontsize=10)
page.glue_values(
    fig_heatmaps=fig,
    std_chance=f"{100 * np.mean(std['chance']):.1f}%",
    uni_chance=f"{100 * np.mean(uni['chance']):.1f}%",
)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_heatmaps
# :name: I-F16
#
# **I-F16 Spatial invariance** (I-F4 of the paper, on CIFAR-10). ASR of every perturbation
# shifted by i pixels to the right and j pixels up with wraparound (the paper's axes); the zero
# shift is in the middle of each map. Left: standard perturbations, each on its own image. Right:
# universal perturbations on the test images, averaged over perturbations. Each map has its own
# colour scale, from zero to its maximum; the white line on each colour bar marks its chance
# level. The chance levels differ: a standard perturbation's target is drawn among the classes
# other than its image's label, so an image already predicted as its target is a misclassified
# one, about the error rate divided by nine ({glue:text}`std_chance` here); a universal
# perturbation is measured on all test images, about a tenth of which the model predicts as any
# one target ({glue:text}`uni_chance` here, as for the paper's chance line, which counts every
# test image).
# ```

# %% tags=["remove-input"]
fig, ax = plt.subplots(figsize=(6, 3.6))
for kind, band, marker, colour, label in (
    (std, std["se"], "o-", "C0", f"standard ({r['n_standard']} images)"),
    (uni, uni["sd"], "s-", "C1", f"universal (mean of {n_universal})"),
):
    curve, band = np.array(kind["curve"]), np.array(band)
    ax.plot(d, 100 * curve, marker, color=colour, label=label)
    ax.fill_between(d, 100 * (curve - band), 100 * (curve + band), color=colour, alpha=0.2)
    ax.axhline(100 * kind["chance"], color=colour, ls=":", label=f"chance, {label.split()[0]}")
ax.set(
    xlabel="shift distance max(|i|, |j|) with wraparound (px)",
    ylabel="ASR (%)",
    ylim=(0, None),
    title="I-F16 ASR versus shift distance",
)
ax.legend(fontsize=8)
fig.tight_layout()

table = pd.DataFrame(
    {
        "standard ASR (%)": [100 * a for a in std["curve"]],
        "standard kept (%)": [100 * k for k in std["retention"]],
        "universal ASR (%)": [100 * a for a in uni["curve"]],
        "universal s.d. (%)": [100 * v for v in uni["sd"]],
        "universal kept (%)": [100 * k for k in uni["retention"]],
    },
    index=pd.Index(d, name="distance (px)"),
)
page.glue_values(fig_distance=fig, table_distance=table.style.format(precision=1, na_rep="n/a"))
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_distance
# :name: I-F16-distance
#
# **I-F16 Spatial invariance, by distance.** The maps of I-F16 averaged over the shifts at the
# same distance from the zero shift (a square ring; with wraparound the farthest shift is half
# the image side). Bands: the binomial standard error for standard perturbations, one standard
# deviation across perturbations for universal ones. Dotted: chance levels.
# ```
#
# ```{glue:table} table_distance
# :name: I-F16-table
#
# **I-F16 in numbers.** Mean ASR at each distance, and the share of the unshifted above-chance
# ASR that is kept ("kept": (ASR - chance) / (ASR at zero shift - chance); n/a when the
# unshifted perturbations do not beat chance).
# ```

# %% tags=["remove-input"]
k = len(d) // 2
step = int(d[k])
where = int(((t["shifts"][:, 0] == step) & (t["shifts"][:, 1] == step)).nonzero()[0])
target = r["targets"][0]
panels = [
    (
        t["standard_delta"],
        f"standard, image {r['standard']['index'][0]}\n-> {r['classes'][r['standard']['targets'][0]]}",
    ),
    (
        shift(t["standard_delta"], step, step),
        f"shifted by ({step}, {step})\nmean ASR {100 * t['standard_asr'][where]:.0f}% (all)",
    ),
    (t["universal_deltas"][0, 0], f"universal -> {r['classes'][target]}\nASR {100 * t['universal_asr'][0, 0, 0]:.0f}%"),
    (
        shift(t["universal_deltas"][0, 0], step, step),
        f"shifted by ({step}, {step})\nASR {100 * t['universal_asr'][0, 0, where]:.0f}%",
    ),
]
fig, axes = plt.subplots(1, 4, figsize=(9, 2.9))
for ax, (delta, title) in zip(axes, panels):
    ax.imshow(visualise(delta), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
fig.suptitle("I-F16 Perturbations before and after a shift", fontsize=9)
fig.tight_layout()
page.glue_values(fig_examples=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_examples
# :name: I-F16-examples
#
# **I-F16 Spatial invariance, examples.** A standard perturbation and a universal one (±3σ
# visualisation), as made and rolled by the shift shown. The standard perturbation's ASR is the
# mean over all standard perturbations at that shift, each on its own image.
# ```

# %% tags=["remove-cell"]
own = np.array(uni["own_far"])


def kept(v):
    return "undefined (no success above chance unshifted)" if np.isnan(v) else f"{100 * v:.0f}%"


page.glue_values(
    far=f"At the largest distance ({int(d[-1])} px, half the image), the share of the unshifted above-chance "
    f"success that is kept is {kept(uni['retention'][-1])} for the universal perturbations "
    + (
        f"(interquartile range {100 * np.quantile(own, 0.25):.0f}% to {100 * np.quantile(own, 0.75):.0f}% over the "
        f"{len(own)} perturbations that beat chance by {100 * section.EFFECTIVE:g} points unshifted)"
        if len(own)
        else f"(none of them beats chance by {100 * section.EFFECTIVE:g} points unshifted)"
    )
    + f" and {kept(std['retention'][-1])} for the standard ones.",
    first_share=f"{100 * d[1] / r['image_size']:.1f}%",
)

# %% [markdown]
# ## Verdict
#
# The standard errors are binomial over images for the standard perturbations and the spread
# across perturbations for the universal ones (the retention's by the delta method).
# {glue:text}`far` The smallest shift here is {glue:text}`first_share` of the image side; the
# paper's smallest, 4 px on 224 px, is 1.8%.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-F4", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
