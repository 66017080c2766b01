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
# # Spatial invariance
#
# **Claim (PAPER.md, claim 1).** Universal perturbations keep working when they are translated,
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

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # ResNet-18 base width of the natural model; None: the profile's
epochs = None  # its training epochs; None: the profile's
seed = None  # seed of the model, of the image picks and of the first universal perturbation
norm = None  # "l2" or "linf"; None: the profile's (l2)
eps = None  # perturbation budget; None: 1.0 for l2, 8/255 for linf
targets = None  # target classes of the universal perturbations (names or indices); None: all
per_target = None  # universal perturbations per target (seeds seed, seed + 1, ...); None: the profile's
n_standard = None  # standard perturbations, one test image each; None: the profile's
n_eval = None  # test images each universal perturbation is measured on; None: the profile's
stride = None  # pixels between shifts on the grid (divides 32); None: the profile's

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from nrf import attacks, report
from nrf.sections import spatial as section

out = section.run(profile, data=data, width=width, epochs=epochs, seed=seed, norm=norm, eps=eps, targets=targets,
                  per_target=per_target, n_standard=n_standard, n_eval=n_eval, stride=stride)
cfg, train_data, opts = out["cfg"], out["train"], out["options"]
std, uni = out["standard"], out["universal"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
paper = section.DEFAULTS["paper"]
glue("n_standard", opts["n_standard"], display=False)
glue("per_target", opts["per_target"], display=False)
glue("n_targets", len(out["targets"]), display=False)
glue("n_universal", opts["per_target"] * len(out["targets"]), display=False)
glue("n_eval", opts["n_eval"], display=False)
glue("stride", opts["stride"], display=False)
glue("n_shifts", len(out["shifts"]), display=False)
glue("threat", f"{out['norm']} eps = {out['eps']:.4g}", display=False)
glue("clean_acc", 100 * out["clean_acc"], display=False)
glue("paper_sizes", f"{paper['n_standard']} standard perturbations, {paper['per_target']} universal ones per "
     f"target on {paper['n_eval']} test images and a shift every {paper['stride']} px", display=False)

# %% [markdown]
# The natural ResNet-18 (clean test accuracy {glue:text}`clean_acc:.1f`%) is attacked at
# {glue:text}`threat`. This page measured {glue:text}`n_standard` standard perturbations and
# {glue:text}`n_universal` universal ones ({glue:text}`per_target` per target for
# {glue:text}`n_targets` targets, each measured on {glue:text}`n_eval` test images) at
# {glue:text}`n_shifts` shifts, one every {glue:text}`stride` px in each direction. The paper
# profile uses {glue:text}`paper_sizes`: the paper shifts every 4 px on 224 px images, about 2% of
# the side, which is 1 px here. The smoke profile thins all of these to fit two CPU minutes.

# %% tags=["remove-input"]
stamp = report.stamp(cfg, train_data)
lo, hi = 0.0, max(std["map"].max().item(), uni["map"].max().item(), 0.05)
extent = [out["axis"][0] - opts["stride"] / 2, out["axis"][-1] + opts["stride"] / 2] * 2
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
for ax, (name, kind) in zip(axes, (("standard", std), ("universal", uni))):
    image = ax.imshow(100 * kind["map"].numpy(), cmap="viridis", vmin=100 * lo, vmax=100 * hi,
                      extent=[extent[0], extent[1], extent[3], extent[2]], interpolation="nearest")
    count = (f"{opts['n_standard']} images" if name == "standard"
             else f"{len(uni['curves'])} perturbations x {opts['n_eval']} images")
    ticks = out["axis"][:: max(1, len(out["axis"]) // 8)].tolist()
    ax.set(title=f"{name} ({count})", xlabel="horizontal shift j (px)", ylabel="vertical shift i (px)",
           xticks=ticks, yticks=ticks)
bar = fig.colorbar(image, ax=axes, label="ASR (%); chance: white line standard, red line universal", shrink=0.9)
for level, colour in ((std["chance"], "white"), (uni["chance_mean"], "red")):
    bar.ax.axhline(100 * level, color=colour, lw=2.5)
fig.suptitle(f"ASR of shifted perturbations ({out['norm']} eps={out['eps']:.3g}; {stamp})", fontsize=10)
glue("fig_heatmaps", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_heatmaps
# :name: I-F16
#
# **I-F16 Spatial invariance** (I-F4 of the paper, on CIFAR-10). ASR of every perturbation
# rolled by (i, j) pixels with wraparound; the zero shift is in the middle of each map. Left:
# standard perturbations, each on its own image. Right: universal perturbations on the test
# images, averaged over perturbations. One colour scale for both; the lines on the colour bar
# mark each kind's chance level.
# ```

# %% tags=["remove-input"]
d = out["distances"].numpy()
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(d, 100 * std["curve"], "o-", color="C0", label=f"standard ({opts['n_standard']} images)")
ax.fill_between(d, 100 * (std["curve"] - std["stderr"]), 100 * (std["curve"] + std["stderr"]), color="C0", alpha=0.2)
ax.plot(d, 100 * uni["curve"], "s-", color="C1", label=f"universal (mean of {len(uni['curves'])})")
ax.fill_between(d, 100 * (uni["curve"] - uni["spread"]), 100 * (uni["curve"] + uni["spread"]), color="C1", alpha=0.2)
ax.axhline(100 * std["chance"], color="C0", ls=":", label="chance, standard")
ax.axhline(100 * uni["chance_mean"], color="C1", ls=":", label="chance, universal")
ax.set(xlabel="shift distance max(|i|, |j|) with wraparound (px)", ylabel="ASR (%)", ylim=(0, None),
       title=f"ASR versus shift distance ({stamp})")
ax.title.set_fontsize(9)
ax.legend(fontsize=8)
fig.tight_layout()
glue("fig_distance", fig, display=False)
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

# %% tags=["remove-cell"]
far, first = -1, 1  # the largest distance, and the smallest non-zero one
uni_chance = uni["chance"].repeat(len(out["seeds"]))  # the chance level of each perturbation's target
std_keep, uni_keep = section.retention(std["curve"], std["chance"]), section.retention(uni["curve"], uni["chance_mean"])
for name, value in {
    "std0": std["curve"][0], "std_first": std["curve"][first], "std_far": std["curve"][far],
    "std_chance": std["chance"], "uni0": uni["curve"][0], "uni0_sd": uni["spread"][0],
    "uni_far": uni["curve"][far], "uni_far_sd": uni["spread"][far],
    "uni_first": uni["curve"][first], "uni_chance": uni["chance_mean"],
    "std_keep_first": std_keep[first], "std_keep_far": std_keep[far], "uni_keep_first": uni_keep[first],
    "uni_keep_far": uni_keep[far],
}.items():
    glue(name, 100 * float(value), display=False)
glue("d_first", int(d[first]), display=False)
glue("d_far", int(d[far]), display=False)
glue("first_share", 100 * float(d[first]) / out["test"].x.shape[-1], display=False)
# each universal perturbation's own retention at the largest distance, where it has an effect to retain
effective = uni["curves"][:, 0] - uni_chance >= 0.05
per = uni["retention"][effective, far]
glue("uni_keep_far_q", f"{100 * per.quantile(0.25):.0f}% to {100 * per.quantile(0.75):.0f}% over the "
     f"{len(per)} perturbations that beat chance by 5 points unshifted" if len(per) else
     f"none of the {len(effective)} perturbations beats chance by 5 points unshifted", display=False)

works = uni["curve"][0] - uni["chance_mean"] >= 0.05 and std["curve"][0] - std["chance"] >= 0.05
universal_keeps, standard_stops = bool(uni_keep[first] >= 0.5), bool(std_keep[first] < 0.5)
kept = (f"after the smallest shift universal perturbations keep {100 * uni_keep[first]:.0f}% of their effect "
        f"and standard ones {100 * std_keep[first]:.0f}%")
if not works:
    verdict = ("cannot be tested at this profile: at zero shift the perturbations beat chance by less than 5 "
               "percentage points, so there is no effect to follow across shifts")
elif universal_keeps and standard_stops:
    verdict = f"holds at this profile: {kept}"
elif universal_keeps or standard_stops:
    verdict = f"holds only in part at this profile: {kept}"
else:
    verdict = f"does not hold at this profile: {kept}"
glue("verdict", verdict, display=False)
if uni_keep[far] >= 0.5:
    far_note = "so their invariance reaches across the whole image"
elif uni_keep[far] >= 0.25:
    far_note = "so over large shifts their effect fades too, though it does not vanish"
else:
    far_note = "so over the largest shifts most of their effect is lost as well"
glue("far_note", far_note, display=False)

# %% [markdown]
# ## Result
#
# Unshifted, the standard perturbations send {glue:text}`std0:.1f`% of their images to the
# target (chance {glue:text}`std_chance:.1f`%), the universal ones {glue:text}`uni0:.1f`% of the
# test images (± {glue:text}`uni0_sd:.1f` across perturbations; chance
# {glue:text}`uni_chance:.1f`%). After the smallest shift on the grid ({glue:text}`d_first` px)
# the standard perturbations succeed on {glue:text}`std_first:.1f`%, keeping
# {glue:text}`std_keep_first:.0f`% of their success above chance; the universal ones succeed on
# {glue:text}`uni_first:.1f`% ({glue:text}`uni_keep_first:.0f`% kept). At the largest distance
# ({glue:text}`d_far` px, half the image) the universal perturbations still succeed on
# {glue:text}`uni_far:.1f`% (± {glue:text}`uni_far_sd:.1f`), keeping {glue:text}`uni_keep_far:.0f`%
# of their above-chance success (interquartile range {glue:text}`uni_keep_far_q`), against
# {glue:text}`std_keep_far:.0f`% for the standard ones.
#
# **Verdict.** The criterion: the claim holds if, after the smallest shift on the grid, universal
# perturbations keep at least half of their above-chance success while standard ones lose more
# than half of theirs. It {glue:text}`verdict`. At the largest shift the universal ones keep
# {glue:text}`uni_keep_far:.0f`% and the standard ones {glue:text}`std_keep_far:.0f`%,
# {glue:text}`far_note`. The smallest shift here is {glue:text}`d_first` px,
# {glue:text}`first_share:.1f`% of the image side; the paper's smallest, 4 px on 224 px, is 1.8%.

# %% tags=["remove-input"]
k = int(len(d) // 2)
s = int(d[k])
where = int(((out["shifts"][:, 0] == s) & (out["shifts"][:, 1] == s)).nonzero()[0])
t = out["targets"][0]
panels = [
    (std["deltas"][0], f"standard, image {int(std['index'][0])}\n-> {out['classes'][int(std['targets'][0])]}"),
    (attacks.shift(std["deltas"][0], s, s), f"shifted by ({s}, {s})\nmean ASR {100 * std['asr'][where]:.0f}% (all)"),
    (uni["deltas"][0, 0], f"universal -> {out['classes'][t]}\nASR {100 * uni['asr'][0, 0, 0]:.0f}%"),
    (attacks.shift(uni["deltas"][0, 0], s, s), f"shifted by ({s}, {s})\nASR {100 * uni['asr'][0, 0, where]:.0f}%"),
]
fig, axes = plt.subplots(1, 4, figsize=(9, 2.9))
for ax, (delta, title) in zip(axes, panels):
    ax.imshow(attacks.visualise(delta), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
fig.suptitle(f"Perturbations before and after a shift ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_examples", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_examples
# :name: I-F16-examples
#
# **I-F16 Spatial invariance, examples.** A standard perturbation and a universal one (±3 sigma
# visualisation), as made and rolled by the shift shown. The standard perturbation's ASR is the
# mean over all standard perturbations at that shift, each on its own image.
# ```
