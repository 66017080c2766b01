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
# # Scaling
#
# **Claim (PAPER.md, claim 2).** Universal perturbations rely on non-robust features, not on
# robust features that leaked into them: scaling a universal perturbation up raises its success
# on natural models, but a robust model does not react to it; a universal perturbation computed
# on the robust model itself, at a much larger budget, does move the robust model.
#
# **Test (I-F5).** The universal perturbation of every target class, made on the natural
# ResNet-18 at the budget eps, is multiplied by s and its attack success rate (ASR) measured on
# that model, on a second natural ResNet-18 (another seed) and on the adversarially trained one.
# (a) whole perturbations, plus the positive control: a universal perturbation made on the
# robust model at `factor` times eps, measured on the robust and the natural model; (b) the
# same for each perturbation's most and least effective patch, as scored by the Locality
# section; (c) pictures of those patches and of the robust model's
# perturbations. The horizontal axis is the norm of the perturbation in units of eps, so the
# robust model's perturbation (made at `factor` eps) is scaled by s / factor and every curve
# compares perturbations of the same size; s = 0 is no perturbation, i.e. the chance level (the
# share of images the model predicts as the target anyway).

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # ResNet-18 base width of all three models; None: the profile's
epochs = None  # natural training epochs; None: the profile's
robust_epochs = None  # adversarial training epochs; None: the profile's
seed = None  # seed of the first natural model, of the perturbations and of the test images
norm = None  # "l2" or "linf"; None: the profile's (l2)
eps = None  # perturbation budget; None: 1.0 for l2, 8/255 for linf
targets = None  # target classes (names or indices); None: all
scales = None  # positive multiples of eps to measure at (1 and factor are always added); None: the profile's
factor = None  # the robust model's perturbation is made at factor * eps; None: 5
n_eval = None  # test images per measurement; None: the profile's (all of them for paper)
n_patches = None  # patches scored per perturbation (Locality section); None: its default
patch_size = None  # patch side in pixels; None: 80/224 of the image side, as the paper

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown
from myst_nb import glue

from nrf import attacks, report
from nrf.sections import scaling as section

out = section.run(profile, data=data, width=width, epochs=epochs, robust_epochs=robust_epochs, seed=seed, norm=norm,
                  eps=eps, targets=targets, scales=scales, factor=factor, n_eval=n_eval, n_patches=n_patches,
                  patch_size=patch_size)
cfg, train_data = out["cfg"], out["train"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
stamp = report.stamp(cfg, train_data)
grid, chance, asr, factor = out["grid"], out["chance"], out["asr"], out["factor"]
x = torch.cat([torch.zeros(1), grid]).numpy()
ROLE = {"natural": ("natural", "C0"), "natural_seed1": ("natural, other seed", "C1"), "robust": ("robust", "C3")}


def curve(kind, role):
    """Per-target ASR [T, 1 + S] with s = 0 (the model's chance level) prepended, in %."""
    return 100 * torch.cat([chance[role][:, None], asr[kind][role]], 1)


def at(kind, role, s):
    """Mean and std over targets of the ASR at scale s, in %."""
    a = 100 * asr[kind][role][:, int((grid == s).nonzero()[0])]
    return a.mean().item(), a.std(unbiased=False).item()


def plot(ax, kind, role, style="-", label=None):
    c = curve(kind, role)
    mean, sd = c.mean(0), c.std(0, unbiased=False)
    name, colour = ROLE[role]
    ax.plot(x, mean, style, marker="o", ms=3, color=colour, label=label or f"on {name}")
    ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.08)


for name, value in {"n_targets": len(out["targets"]), "n_eval": out["n_eval"], "factor": f"{factor:g}",
                    "threat": f"{out['norm']} eps = {out['eps']:.4g}", "s_max": f"{grid.max().item():g}",
                    "n_patches": out["patch_options"]["n_patches"], "patch_size": out["patches"]["size"],
                    "scales": ", ".join(f"{s:g}" for s in grid.tolist())}.items():
    glue(name, value, display=False)
for role in ROLE:
    glue(f"clean_{role}", 100 * out["clean_acc"][role], display=False)
glue("robust_robust_acc", 100 * out["robust_acc"]["robust"], display=False)

# %% [markdown]
# The three models: natural ResNet-18 (clean test accuracy {glue:text}`clean_natural:.1f`%), a
# second one with another seed ({glue:text}`clean_natural_seed1:.1f`%) and the robust one
# ({glue:text}`clean_robust:.1f`% clean, {glue:text}`robust_robust_acc:.1f`% under attack at
# the training budget). Threat model: {glue:text}`threat`. Each of the {glue:text}`n_targets`
# targets' perturbations is measured on {glue:text}`n_eval` test images at s =
# {glue:text}`scales` times eps; patches are the best and worst of {glue:text}`n_patches`
# random {glue:text}`patch_size` px squares. The smoke profile measures on a seeded subset of
# the test images and a coarse scale grid, and solves the robust model's perturbations on a
# smaller base set, to fit the CPU budget; the paper profile measures on the whole test set.

# %% tags=["remove-input"]
fig, ax = plt.subplots(figsize=(7, 5.2))
for role in ROLE:
    plot(ax, "universal", role, label=f"natural model's perturbation, on {ROLE[role][0]}")
for role in ("robust", "natural"):
    plot(ax, "robust", role, style="--", label=f"robust model's perturbation ({factor:g} eps), on {ROLE[role][0]}")
for role in ROLE:
    ax.axhline(100 * chance[role].mean(), color=ROLE[role][1], ls=":", lw=1)
for s, what in ((1, "natural's as made"), (factor, "robust's as made")):
    ax.axvline(s, color="grey", lw=0.8)
    ax.text(s, 101, f" {what}", fontsize=7, color="grey", rotation=90, va="top", ha="right")
ax.set(xlabel="perturbation norm / eps (the scale s)", ylabel="ASR (%)", ylim=(0, 102),
       title=f"Scaled universal perturbations ({out['norm']} eps={out['eps']:.3g}; {stamp})")
ax.title.set_fontsize(9)
ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
fig.tight_layout()
glue("fig_scaling", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_scaling
# :name: I-F5a
#
# **I-F5 (a) Scaling.** ASR of s times each target's universal perturbation, mean over targets
# with one standard deviation across targets shaded. Solid: made on the natural model, measured
# on it, on the second natural model and on the robust model. Dashed: made on the robust model
# at `factor` eps and scaled to the same norm, measured on the robust and the natural model.
# Dotted: each model's chance level.
# ```

# %% tags=["remove-input"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
for ax, kind in zip(axes, ("best", "worst")):
    for role in ROLE:
        plot(ax, kind, role)
        ax.axhline(100 * chance[role].mean(), color=ROLE[role][1], ls=":", lw=1)
    ax.axvline(1, color="grey", lw=0.8)
    ax.set(xlabel="scale s (1: the patch as scored)", title=f"{kind} patch of each target")
axes[0].set(ylabel="ASR (%)", ylim=(0, 102))
axes[0].legend(fontsize=8)
fig.suptitle(f"Scaled patches ({out['patches']['size']} px; {stamp})", fontsize=9)
fig.tight_layout()
glue("fig_patches", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_patches
# :name: I-F5b
#
# **I-F5 (b) Scaling single patches.** The same curves for each target's most (left) and least
# (right) effective patch of the natural model's perturbation, cut out (zero elsewhere) and, for
# l2, rescaled to the largest patch norm, exactly as the Locality section scored them; s = 1 is
# that patch. Mean over targets, one standard deviation shaded; dotted: chance.
# ```

# %% tags=["remove-input"]
p, classes, n = out["patches"], out["classes"], len(out["targets"])
rows = [("natural model's\nperturbation", lambda i: out["deltas"][i]),
        ("best patch\n(zoom)", lambda i: crop(out["deltas"][i], p["best_corner"][i])),
        ("worst patch\n(zoom)", lambda i: crop(out["deltas"][i], p["worst_corner"][i])),
        (f"robust model's\nperturbation ({factor:g} eps)", lambda i: out["robust_deltas"][i])]


def crop(delta, corner):
    top, left = corner.tolist()
    return delta[:, top:top + p["size"], left:left + p["size"]]


fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n + 1.2, 1.45 * len(rows) + 0.6), squeeze=False)
for r, (label, pick) in enumerate(rows):
    for i, t in enumerate(out["targets"]):
        ax = axes[r, i]
        ax.imshow(attacks.visualise(pick(i)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(classes[t], fontsize=8)
        if r in (1, 2):
            ax.set_xlabel(f"ASR {100 * p['best_asr' if r == 1 else 'worst_asr'][i]:.0f}%", fontsize=7)
        if i == 0:
            ax.set_ylabel(label, fontsize=7)
fig.suptitle(f"Perturbations and patches, ±3 sigma ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_pictures", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_pictures
# :name: I-F5c
#
# **I-F5 (c) Pictures.** Per target (columns): the natural model's universal perturbation, its
# best and worst patch (zoomed, with the ASR the patch alone scored) and the robust model's
# universal perturbation at `factor` eps. Each picture is the ±3 sigma visualisation of its own
# values.
# ```

# %% tags=["remove-cell"]
s_max = grid.max().item()
numbers = {}
for role in ("natural", "natural_seed1", "robust"):
    for name, s in (("1", 1.0), ("factor", factor), ("max", s_max)):
        numbers[f"{role}_{name}"], numbers[f"{role}_{name}_sd"] = at("universal", role, s)
    numbers[f"{role}_chance"] = 100 * chance[role].mean().item()
numbers["robust_own"], numbers["robust_own_sd"] = at("robust", "robust", factor)
numbers["robust_on_natural"], _ = at("robust", "natural", factor)
for kind in ("best", "worst"):
    for role in ("natural", "robust"):
        numbers[f"{kind}_{role}_max"], _ = at(kind, role, s_max)
for name, value in numbers.items():
    glue(name, value, display=False)

margin = 5.0  # percentage points: what counts as a change rather than noise
rises = all(numbers[f"{r}_factor"] - numbers[f"{r}_1"] >= margin for r in ("natural", "natural_seed1"))
still = numbers["robust_factor"] - numbers["robust_chance"] < 2 * margin
moved = (numbers["robust_own"] - numbers["robust_chance"] >= 2 * margin
         and numbers["robust_own"] > numbers["robust_factor"] + margin)
parts = [
    f"scaling {'raises' if rises else 'does not clearly raise'} the ASR on both natural models",
    f"the robust model {'stays' if still else 'does not stay'} near chance",
    f"its own perturbation of the same size {'moves' if moved else 'does not move'} it",
]
verdict = ("holds" if rises and still and moved
           else "does not hold" if not (rises or still or moved) else "holds only in part")
glue("verdict", f"{verdict} at this profile: {parts[0]}, {parts[1]}, and {parts[2]}", display=False)
beyond = numbers["robust_max"] - numbers["robust_chance"] >= 2 * margin
glue("beyond", "the robust model starts to react to the natural model's perturbations too" if beyond
     else "the robust model stays within 10 points of chance", display=False)

# %% [markdown]
# ## Result
#
# At the budget (s = 1) the natural model's universal perturbations reach
# {glue:text}`natural_1:.1f`% on it (± {glue:text}`natural_1_sd:.1f` across targets) and
# {glue:text}`natural_seed1_1:.1f`% on the second natural model. Scaled to
# {glue:text}`factor` eps they reach {glue:text}`natural_factor:.1f`%
# (± {glue:text}`natural_factor_sd:.1f`) and {glue:text}`natural_seed1_factor:.1f`%
# (± {glue:text}`natural_seed1_factor_sd:.1f`), and at {glue:text}`s_max` eps
# {glue:text}`natural_max:.1f`% and {glue:text}`natural_seed1_max:.1f`% (chance
# {glue:text}`natural_chance:.1f`% and {glue:text}`natural_seed1_chance:.1f`%). On the robust
# model they reach {glue:text}`robust_factor:.1f`% (± {glue:text}`robust_factor_sd:.1f`) at
# {glue:text}`factor` eps and {glue:text}`robust_max:.1f`% at {glue:text}`s_max` eps (chance
# {glue:text}`robust_chance:.1f`%), whereas the robust model's own universal perturbations,
# made at {glue:text}`factor` eps, reach {glue:text}`robust_own:.1f`%
# (± {glue:text}`robust_own_sd:.1f`) on it and {glue:text}`robust_on_natural:.1f`% on the
# natural model. Single patches scaled to {glue:text}`s_max`: the best reach
# {glue:text}`best_natural_max:.1f`% on the natural model and {glue:text}`best_robust_max:.1f`% on
# the robust one, the worst {glue:text}`worst_natural_max:.1f`% and
# {glue:text}`worst_robust_max:.1f`%.
#
# **Verdict.** The criteria are read at s = {glue:text}`factor`, the budget of the robust
# model's own perturbation, so that every comparison is between perturbations of the same norm
# (the paper compares at 30 = 5 x 6 on ImageNet-M10): scaling "raises" the ASR if it beats
# s = 1 by at least 5 percentage points on both natural models; the robust model "stays near
# chance" if the natural model's perturbations stay within 10 points of its chance level; its
# own perturbation "moves" it if it beats chance by at least 10 points and the natural model's
# perturbations of the same norm by at least 5. The claim {glue:text}`verdict`. Scaled further,
# to {glue:text}`s_max` eps, {glue:text}`beyond`.
