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
# (appendix)=
# # Appendix: computing universal perturbations
#
# How the book's universal perturbations are computed, and what else the solver can be fed. A
# targeted universal perturbation for target t is one delta in the eps-ball that minimises the
# mean cross-entropy toward t over a **base set** of K training images, found by projected,
# normalised gradient steps on mini-batches of the base set ({ref}`reproduced`). The
# paper fixed its step size for 224 px images and asks for a step scaled to the data set,
# justified by the learning dynamics (I-F9). Every measurement on this page is on the natural
# ResNet-18; the attack success rate (ASR) of a perturbation is the share of held-out test
# images that it sends to the target, and its chance level is the share that the model
# predicts as the target anyway.
#
# - **I-F9 Learning dynamics.** The base-set ASR during each epoch of the solver (read off the
#   solver's own forward passes, like a running training accuracy) while the step size, the
#   mini-batch size and K vary one at a time around a centre setting whose step is the one
#   every other page uses, and the test ASR of each final perturbation: the gap between the two
#   shows how much a small base set overfits. **Claims:** the step size "did not have a large
#   impact" (the paper's words); a small base set overfits.
# - **I-A6 Alternate base sets.** The base set is K random augmentations of one training image.
#   Its universal perturbation is compared with one from K ordinary training images and with a
#   standard PGD perturbation of that image, on the test images of this model and of a second
#   natural ResNet-18 (another seed). **Claim:** augmentations of a single image suffice for a
#   perturbation that works on new images, which a standard perturbation of that image does not.
# - **I-F17 Diversity.** Several universal perturbations for one target from random starts,
#   then the same runs with a penalty that pushes apart what they do to the network's
#   representations, and their pairwise similarity. **Claim:** the penalised perturbations
#   "remain similar, but with changes in spatial arrangements" (the paper's words), and they
#   still work.
# - **I-F18 Subclass targets** need fine-grained labels.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown
from matplotlib.gridspec import GridSpec

from nrf import diversity, page, reported
from nrf.attacks import visualise
from nrf.sections import appendix as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options appendix`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, t = rec["results"], rec["tensors"]
classes, c = r["classes"], r["centre"]
dyn, aug, div = r["dynamics"], r["augmented"], r["diverse"]
stamp = f"profile {rec['options']['profile']}"
page.glue_values(
    threat=f"{r['norm']} eps = {page.eps_text(r['eps'])}",
    clean_natural=100 * r["clean_acc"]["natural"],
    clean_seed1=100 * r["clean_acc"]["natural_seed1"],
    centre=f"step {c['step']:g} eps, mini-batches of {c['batch']}, K = {c['base_size']}",
    solver_epochs=r["solver_epochs"],
    n_eval=f"{r['n_eval']:,} of the {r['n_test']:,}" + ("" if r["n_eval"] == r["n_test"] else " (the paper: all)"),
    f9_targets=", ".join(classes[i] for i in r["targets"]),
    target_name=classes[r["target"]],
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# The natural ResNet-18 has clean test accuracy {glue:text}`clean_natural:.1f`% (the second
# one, used only for transfer in I-A6, {glue:text}`clean_seed1:.1f`%). Threat model:
# {glue:text}`threat`. Centre setting: {glue:text}`centre`, {glue:text}`solver_epochs` epochs.
# Every test ASR is measured on the same {glue:text}`n_eval` test images.
#
# ## I-F9 Learning dynamics
#
# One perturbation per target ({glue:text}`f9_targets`) at every setting of a one-factor-at-a-time
# sweep around the centre; the base set of size K is the first K images of one seeded order of
# the training set, so smaller base sets are subsets of larger ones.

# %% tags=["remove-input"]
curves = 100 * np.array(dyn["curves"])  # [S, epochs, T]
final_test, final_base = 100 * np.array(dyn["asr"]), 100 * np.array(dyn["base_asr"])  # [S, T]
chance9 = 100 * np.mean(dyn["chance"])
centre = [c["step"], c["batch"], c["base_size"]]
FACTORS = {
    "step": ("step size", lambda v: f"{v:g} eps"),
    "batch": ("mini-batch size", lambda v: f"batch {v}"),
    "base_size": ("base-set size K", lambda v: f"K = {v}"),
}
epoch_axis = np.arange(1, curves.shape[1] + 1)
fig, axes = plt.subplots(2, 3, figsize=(11.5, 6.6))
for col, (factor, (name, label)) in enumerate(FACTORS.items()):
    panel = dyn["panels"][factor]
    rows, values = panel["rows"], panel["values"]
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
    for colour, row, v in zip(colours, rows, values):
        is_centre = dyn["settings"][row] == centre
        axes[0, col].plot(
            epoch_axis,
            curves[row].mean(1),
            marker="o",
            ms=3,
            color="k" if is_centre else colour,
            lw=2.2 if is_centre else 1.2,
            label=label(v) + (" (centre)" if is_centre else ""),
        )
    axes[0, col].set(xlabel="epoch", title=f"varying the {name}")
    axes[0, col].legend(fontsize=7)
    axes[1, col].errorbar(
        values, final_base[rows].mean(1), final_base[rows].std(1), marker="o", capsize=3, label="its own base set"
    )
    axes[1, col].errorbar(
        values, final_test[rows].mean(1), final_test[rows].std(1), marker="s", capsize=3, label="held-out test images"
    )
    axes[1, col].axhline(chance9, color="grey", ls=":", lw=1, label="chance (test)")
    axes[1, col].set(xscale="log", xlabel=name)
    axes[1, col].set_xticks(values, [f"{v:g}" for v in values])
    axes[1, col].minorticks_off()
axes[0, 0].set_ylabel("base-set ASR during the epoch (%)")
axes[1, 0].set_ylabel("ASR of the final perturbation (%)")
axes[1, 0].legend(fontsize=7)
fig.suptitle(f"Learning dynamics of the universal-perturbation solver ({stamp})", fontsize=9)
fig.tight_layout()
page.glue_values(fig_dynamics=fig)
plt.close(fig)

settings = pd.DataFrame(
    [
        {
            "step (x eps)": f"{s:g}",
            "batch": b,
            "K": k,
            "base-set ASR (%)": base.mean(),
            "test ASR (%)": test.mean(),
            "base minus test (points)": (base - test).mean(),
            "centre": "yes" if [s, b, k] == centre else "",
        }
        for (s, b, k), base, test in zip(dyn["settings"], final_base, final_test)
    ]
)
settings = settings.set_index(["step (x eps)", "batch", "K"])
page.glue_values(table_dynamics=settings.style.format(precision=1), chance9=float(chance9))

# %% [markdown]
# ```{glue:figure} fig_dynamics
# :name: I-F9
#
# **I-F9 Learning dynamics.** Top: base-set ASR during each epoch of the solver (mean over the
# I-F9 targets), varying one factor at a time around the centre setting (black); it is read off
# the solver's forward passes, so it lags the updates made within the epoch. Bottom: the ASR of
# the final perturbation on its own base set and on the held-out test images, mean over targets
# with one standard deviation across targets; dotted: the test chance level. Step sizes are
# fractions of eps; mini-batch sizes count images per perturbation.
# ```
#
# ```{glue:table} table_dynamics
# :name: I-F9-table
#
# **I-F9, the final perturbations.** Every setting of the sweep: the mean over targets of the
# final perturbation's ASR on its own base set and on the held-out test images (chance on test:
# {glue:text}`chance9:.1f`%).
# ```
#
# The step size has "no large impact" when the centre step's mean paired shortfall against the
# best step, over the targets, plus two standard errors stays below five points (an equivalence
# margin: a large impact must be ruled out, not merely go undetected), both on the base set and on
# the test images; the
# base-set excess of the smallest K over that of the largest says whether small base sets
# overfit (verdicts at the end of the page).
#
# ## I-A6 Alternate base sets

# %% tags=["remove-input"]
KINDS = {
    "augmented": "K augmentations\nof one image",
    "ordinary": "K ordinary\ntraining images",
    "standard": "standard PGD\non the image",
}
ROLES = {"natural": "natural", "natural_seed1": "natural, other seed"}
fig = plt.figure(figsize=(11, 5.2))
gs = GridSpec(2, 6, figure=fig)
pictures = [(f"the image\n({classes[r['image_label']]}, #{r['image']})", t["image"])] + [
    (f"augmentation {j + 1}", a) for j, a in enumerate(t["augmentations"][:5])
]
for j, (title, picture) in enumerate(pictures):
    ax = fig.add_subplot(gs[0, j])
    ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
for j, (kind, name) in enumerate(KINDS.items()):
    ax = fig.add_subplot(gs[1, j])
    ax.imshow(visualise(t["augmented_deltas"][j]), interpolation="nearest")
    ax.set_title(f"{name}\ntest ASR {100 * aug['asr']['natural'][kind]:.1f}%", fontsize=8)
    ax.axis("off")
ax = fig.add_subplot(gs[1, 3:])
bars = pd.DataFrame(
    [
        {"perturbation": KINDS[k], "model": f"on {name}", "test ASR (%)": 100 * aug["asr"][role][k]}
        for role, name in ROLES.items()
        for k in KINDS
    ]
)
sns.barplot(bars, x="perturbation", y="test ASR (%)", hue="model", palette=["C0", "C1"], errorbar=None, ax=ax)
for container in ax.containers:
    ax.bar_label(container, fmt="%.1f", fontsize=8)
for i, (role, name) in enumerate(ROLES.items()):
    ax.axhline(100 * aug["chance"][role], color=f"C{i}", ls=":", lw=1, label=f"chance {name}")
ax.set(xlabel=None, ylim=(0, 1.45 * max(bars["test ASR (%)"].max(), 100 * max(aug["chance"].values()))))
ax.tick_params(axis="x", labelsize=8)
ax.legend(fontsize=8, loc="upper center", ncol=2)
fig.suptitle(
    f"Target {classes[r['target']]}: base set of K = {c['base_size']} augmentations of one image ({stamp})", fontsize=9
)
fig.tight_layout()
page.glue_values(fig_augmented=fig)
plt.close(fig)

table = pd.DataFrame(
    {f"test ASR on the {name} model (%)": [100 * aug["asr"][role][k] for k in KINDS] for role, name in ROLES.items()},
    index=pd.Index([n.replace("\n", " ") for n in KINDS.values()]),
)
table["ASR on its own base set, last epoch (%)"] = [100 * aug["base_asr"].get(k, np.nan) for k in KINDS]
table["fools the image itself"] = ["yes" if aug["own"][k] else "no" for k in KINDS]
chance_row = pd.DataFrame(
    {**{f"test ASR on the {name} model (%)": [100 * aug["chance"][role]] for role, name in ROLES.items()}},
    index=["chance (unperturbed)"],
)
page.glue_values(
    table_augmented=pd.concat([table, chance_row]).style.format(precision=1, na_rep="-"),
    augment={
        "crop_flip": "random crops from the image padded by 4 px, and horizontal flips (the CIFAR "
        "training augmentation)",
        "resized_crop_flip": "random resized crops (8% to 100% of the area, aspect 3/4 to 4/3, "
        "resized back to full size) and horizontal flips (the ImageNet "
        "training augmentation)",
    }[r["augment"]],
)

# %% [markdown]
# The augmentations are {glue:text}`augment`, drawn from a seeded generator; the three
# perturbations share the solver settings of the centre, toward {glue:text}`target_name`.
#
# ```{glue:figure} fig_augmented
# :name: I-A6
#
# **I-A6 Alternate base sets.** Top: the training image and the first of its K seeded
# augmentations that form the base set. Bottom left: the universal perturbation computed on
# those augmentations, one computed on K ordinary training images (the same solver settings),
# and a standard perturbation of the image (targeted PGD, 10 steps of eps/3), each shown with
# the ±3 sigma visualisation of its own values. Bottom right: their ASR on the held-out test
# images of the model they were made on and of a second natural model (another seed); dotted:
# each model's chance level.
# ```
#
# ```{glue:table} table_augmented
# :name: I-A6-table
#
# **I-A6, the numbers.** Test ASR of the three perturbations on both models, the ASR of the two
# universal ones on their own base set in the solver's last epoch, and whether each sends the
# original image itself to the target.
# ```
#
# ## I-F17 Diversity


# %% tags=["remove-input"]
def off(m):
    """Mean of the entries i < j of a square matrix."""
    m = np.asarray(m)
    return m[np.triu_indices(len(m), 1)].mean()


n = len(t["diverse_plain"])
RUNS = {"plain": "random starts", "penalised": f"random starts + penalty (weight {r['penalty']:g})"}
fig, axes = plt.subplots(2, n + 3, figsize=(1.3 * n + 7.8, 5.4), gridspec_kw={"width_ratios": [1] * n + [1.6] * 3})
for row, (run, name) in enumerate(RUNS.items()):
    res = div[run]
    for i in range(n):
        ax = axes[row, i]
        ax.imshow(visualise(t[f"diverse_{run}"][i]), interpolation="nearest")
        ax.set_title(f"#{i + 1}: ASR {100 * res['asr'][i]:.1f}%", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[row, 0].set_ylabel(name, fontsize=8)
    for ax, matrix, what in (
        (axes[row, n], np.array(res["pixel"]), "pixel space"),
        (axes[row, n + 1], np.array(res["spectrum"]), "band spectra\n(blind to shifts)"),
        (axes[row, n + 2], np.array(res["representation"]).mean(0), "representation\n(mean over layers)"),
    ):
        ids = [f"#{i + 1}" for i in range(n)]
        sns.heatmap(
            matrix,
            vmin=-1,
            vmax=1,
            cmap="RdBu_r",
            annot=n <= 6,  # beyond 6 x 6 the numbers overlap: the table below gives the means
            fmt=".1f",
            annot_kws={"fontsize": 9},
            square=True,
            cbar=False,
            xticklabels=ids,
            yticklabels=ids,
            ax=ax,
        )
        ax.tick_params(labelsize=8)
        ax.set_title(f"cosine, {what}", fontsize=8)
fig.suptitle(f"{n} universal perturbations toward {classes[r['target']]} ({stamp})", fontsize=9)
fig.tight_layout()
page.glue_values(fig_diversity=fig)
plt.close(fig)

table = pd.DataFrame(
    [
        {
            "run": name,
            "mean test ASR (%)": 100 * np.mean(div[run]["asr"]),
            "pixel cosine": off(div[run]["pixel"]),
            "band-spectrum cosine": off(div[run]["spectrum"]),
            **{f"{layer} cosine": off(m) for layer, m in zip(r["layers"], div[run]["representation"])},
        }
        for run, name in RUNS.items()
    ]
).set_index("run")
page.glue_values(
    table_diversity=table.style.format(precision=2).format(precision=1, subset=["mean test ASR (%)"]),
    f17_n=n,
    f17_weight=f"{r['penalty']:g}",
    f17_layers=", ".join(r["layers"]),
    f17_chance=100 * div["chance"],
    f17_pairs=n * (n - 1) // 2,
    f17_bands=f"{diversity.BANDS} x {diversity.BANDS}",
)
f17 = next(v for v in section.verdicts(rec) if v.test == "I-F17" and v.kind == "claim")
page.glue_values(
    f17_claim=Markdown(f"{f17.criterion.rstrip('.')}. **{f17.status.capitalize()}**: {f17.detail.rstrip('.')}.")
)

# %% [markdown]
# **The penalty.** The {glue:text}`f17_n` perturbations share one base set and one mini-batch
# order and are solved together (`nrf.diversity.solve`). At each step, for every perturbation
# delta_i, the solver descends its mean cross-entropy toward the target plus
# {glue:text}`f17_weight` times the penalty P. At each layer l of {glue:text}`f17_layers` (the
# outputs of the ResNet-18's residual stages), v_il(x) = phi_l(x + delta_i) - phi_l(x) is the
# change delta_i makes to that layer's activations of image x, flattened; P is the squared cosine
# cos²(v_il(x), v_jl(x)), averaged over the pairs i < j, the images x of the mini-batch and the
# layers. Squared, so that opposite changes count as alike too; on cosines, so that it pushes
# directions apart without rewarding small changes. Weight 0 is exactly the solver of every
# other page run from random starts (a test checks this), so the top row is that solver.
#
# ```{glue:figure} fig_diversity
# :name: I-F17
#
# **I-F17 Diversity.** Top: universal perturbations toward one target from different random
# starts (uniform in the eps-ball) on one base set; bottom: the same runs (same starts, same
# mini-batch order) with the orthogonality penalty. Each is shown with the ±3 sigma
# visualisation and its test ASR. Right: cosine similarity of every pair, between the
# perturbations themselves (pixel space), between their magnitude spectra averaged in frequency
# bands (blind to where a pattern lies) and between the feature changes they induce on the
# held-out test images (representation space: mean over images and over the penalised layers).
# ```
#
# ```{glue:table} table_diversity
# :name: I-F17-table
#
# **I-F17, the numbers.** Mean pairwise cosine (pairs i < j) in pixel space, between band
# spectra and at each penalised layer, and the mean test ASR (chance
# {glue:text}`f17_chance:.1f`%), without and with the penalty.
# ```
#
# **The claim.** The paper's penalised perturbations "remain similar, but with changes in spatial
# arrangements". Similar in what they are made of is measured blind to where it lies: per colour
# channel, the modulus of the perturbation's 2-D Fourier transform (which a shift leaves as it
# is), averaged over {glue:text}`f17_bands` bands of neighbouring frequencies (so that the
# speckle left by the exact positions of a pattern's elements does not count) and centred, so
# that two independent noises score about 0 and a shifted copy 1 (`nrf.diversity.spectrum_cosine`).
# Where the patterns lie is measured by the pixel cosine. Each of the {glue:text}`f17_pairs`
# pairs of perturbations is compared with the same pair without the penalty (the same random
# starts); the pairs share perturbations, so the standard error is the jackknife's over the
# perturbations, not the pairs'. The rule, stated by the code that applies it, and the outcome:
#
# ```{glue:md} f17_claim
# :format: myst
# ```
#
# ## I-F18 Subclass targets

# %% tags=["remove-cell"]
if r["fine_classes"] is None:
    f18 = (
        f"**Not applicable to this data set.** The training data (`{r['data_identity']}`) has no fine-grained "
        f"labels: its {len(classes)} classes have no subclasses to target. Where fine labels exist "
        "(ImageNet-M10, whose 60 ImageNet classes are the subclasses of its 10 super-classes), I-F18 trains a "
        "ResNet-18 on the fine labels and computes a universal perturbation toward each fine class, to see "
        "whether subclass targets give more specific patterns. Nothing is computed for it on this page."
    )
else:
    f18 = (
        f"The training data has {r['fine_classes']} fine-grained classes, but this book does not implement "
        "I-F18 yet (a ResNet-18 trained on the fine labels and a universal perturbation toward each fine class): "
        "nothing is computed for it on this page."
    )
page.glue_values(f18=Markdown(f18))

# %% [markdown]
# ```{glue:md} f18
# :format: myst
# ```
#
# ## Verdict
#
# Where the perturbations beat chance by only a few points, as on the small smoke models, the
# verdicts say whether the solver's settings are unreasonable; the paper profile reads the
# curves' shape.

# %% tags=["remove-input"]
Markdown(reported.beside("I-F9, I-A6, I-F17", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
