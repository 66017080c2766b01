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
# # Gallery
#
# **Claim (PAPER.md, claim 1).** Universal perturbations look more human-aligned than standard
# adversarial perturbations: amplified, they show patterns of their target class.
#
# **Test (I-F2, I-F1, I-F12, I-F13).** For every target class we solve one targeted universal
# perturbation on the natural ResNet-18: a single delta in the eps-ball that sends a shared base
# set of training images to the target (normalised-gradient PGD over mini-batches, the solver
# shared by all Part I sections). Each is shown amplified with the ±3σ visualisation (per
# channel, clip to three standard deviations of the perturbation, then rescale to [0, 1]) and
# scored by its attack success rate (ASR) on the whole test split. Next to two of them we put a
# standard perturbation (targeted PGD on one image, 10 steps of eps/3) of the same norm, and a
# zoom on the universal perturbation's most effective patch (scored in the Locality section).
# Whether a picture looks like its class cannot be measured; what can be measured is whether
# the perturbations work, i.e. beat the chance level.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
arch = "resnet18"  # natural model of I-F2 / I-F1: "resnet18" or "vgg11"
norm = None  # threat model: None: the profile's ("l2"); or "linf"
eps = None  # None: 1.0 for l2, 8/255 for linf
pair = None  # I-F1's two targets (names or indices); None: ("dog", "automobile"), chosen before looking
image_seed = 0  # picks I-F1's test image (a correctly classified one of neither target class)
extras = None  # also I-F12 (VGG11, l2) and I-F13 (ResNet-18, linf); None: on for paper, off for smoke
width = None  # width of the models; None: the profile's
epochs = None  # training epochs of the models; None: the profile's
seed = None  # model and universal-perturbation seed; None: the profile's

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
from IPython.display import Markdown
from matplotlib.patches import Rectangle
from myst_nb import glue

from nrf import attacks, report
from nrf.data import to_float
from nrf.sections import gallery as section

out = section.run(profile, data=data, arch=arch, norm=norm, eps=eps, pair=pair, image_seed=image_seed, extras=extras,
                  width=width, epochs=epochs, seed=seed)
cfg, train_data, test_data, classes = out["cfg"], out["train"], out["test"], out["classes"]
main, vs = out["main"], out["compare"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)
ARCH_NAMES = {"resnet18": "ResNet-18", "vgg11": "VGG11"}
glue("model_name", ARCH_NAMES[main["arch"]], display=False)
glue("threat", f"{main['norm']}, eps = {main['eps']:.4g}", display=False)
glue("profile_note", "" if profile == "paper" else (
    f" The `{profile}` profile uses narrow, briefly trained models and a small base set, so its numbers show "
    "the method working, not the paper's effect sizes; it skips the extra galleries I-F12 and I-F13 "
    "(set extras=True) to fit a CPU budget."), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# Model: natural {glue:text}`model_name`; threat model: {glue:text}`threat`.{glue:text}`profile_note`

# %% tags=["remove-input"]
def gallery_figure(g, fig_id):
    """Every target's universal perturbation, titled with its class, test ASR and chance level."""
    n = len(g["targets"])
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.05 * rows + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, t, d, a, c in zip(axes.flat, g["targets"], g["deltas"], g["asr"], g["chance"]):
        ax.imshow(attacks.visualise(d))
        ax.set_title(f"{classes[t]}\nASR {100 * a:.0f}% (chance {100 * c:.0f}%)", fontsize=8)
    fig.suptitle(f"{fig_id}: {ARCH_NAMES[g['arch']]}, {g['norm']} eps={g['eps']:.4g}\n({report.stamp(cfg, train_data)})",
                 fontsize=10)
    return fig


fig = gallery_figure(main, "I-F2 Gallery")
glue("fig_I-F2", fig, display=False)
plt.close(fig)
for fig_id, (a, nm) in section.EXTRA_GALLERIES.items():
    g = out["extras"].get(fig_id, main if (a, nm) == (main["arch"], main["norm"]) else None)
    if g is not None:
        fig = gallery_figure(g, f"{fig_id} Gallery")
    else:
        fig, ax = plt.subplots(figsize=(6, 0.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{fig_id} ({ARCH_NAMES[a]}, {nm}) is not computed at this setting: set extras=True",
                ha="center", va="center")
    glue(f"fig_{fig_id}", fig, display=False)
    plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-F2
# :name: I-F2
#
# **I-F2 Gallery.** The targeted universal perturbation of every class (±3σ visualisation; grey
# is zero), with its attack success rate on the whole test split and the chance level: the
# share of test images the model predicts as the target with no perturbation.
# ```

# %% tags=["remove-input"]
x = to_float(test_data.x[vs["image"]])
fig, axes = plt.subplots(2, 5, figsize=(9.5, 4.6), layout="constrained")
for row, t in enumerate(vs["pair"]):
    k = main["targets"].index(t)
    top, left = (int(v) for v in vs["best_corner"][row])
    size = vs["patch_size"]
    std, uni = vs["standard"][row], main["deltas"][k]
    ok = int(vs["standard_pred"][row]) == t
    panels = [
        (x.permute(1, 2, 0).numpy(), f"test image: {classes[vs['label']]}"),
        (attacks.visualise(std), f"standard, target {classes[t]}\n{main['norm']} norm "
         f"{(std.norm() if main['norm'] == 'l2' else std.abs().max()):.3g}"),
        ((x + std).clamp(0, 1).permute(1, 2, 0).numpy(),
         f"image + standard\n-> {classes[int(vs['standard_pred'][row])]} ({'success' if ok else 'failure'})"),
        (attacks.visualise(uni), f"universal, target {classes[t]}\ntest ASR {100 * main['asr'][k]:.0f}%; "
         f"here -> {classes[int(vs['universal_pred'][row])]}"),
        (attacks.visualise(uni)[top:top + size, left:left + size],
         f"best patch alone\nASR {100 * vs['best_asr'][row]:.0f}% (chance {100 * vs['patch_chance'][row]:.0f}%)"),
    ]
    for ax, (img, title) in zip(axes[row], panels):
        ax.imshow(img)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    axes[row, 3].add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="lime", lw=1.5))
fig.suptitle(f"I-F1 Standard vs universal: {ARCH_NAMES[main['arch']]}, {main['norm']} eps={main['eps']:.4g} "
             f"({report.stamp(cfg, train_data)})", fontsize=10)
glue("fig_I-F1", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-F1
# :name: I-F1
#
# **I-F1 Standard vs universal.** For two targets (one per row): a correctly classified test
# image, a standard targeted perturbation of the same norm budget made for that image alone and
# where it sends the image, the universal perturbation of the target, and a zoom on its most
# effective patch (green square; scored alone, rescaled to the largest patch norm, as in the
# Locality section). Both perturbations use the ±3σ visualisation.
# ```
#
# ```{glue:figure} fig_I-F12
# :name: I-F12
#
# **I-F12 Gallery, VGG11.** As I-F2, for the natural VGG11 (l2).
# ```
#
# ```{glue:figure} fig_I-F13
# :name: I-F13
#
# **I-F13 Gallery, linf.** As I-F2, for the natural ResNet-18 under the linf threat model (eps 8/255).
# ```

# %% tags=["remove-cell"]
n_test = len(test_data.y)


def summary(g):
    """Mean ASR and chance, the margin (three binomial standard errors at chance on the test split),
    and how many targets beat chance by more than the margin."""
    c = g["chance"].mean().item()
    margin = 3 * (c * (1 - c) / n_test) ** 0.5
    beat = int(((g["asr"] - g["chance"]) > margin).sum())
    return g["asr"].mean().item(), g["asr"].min().item(), g["asr"].max().item(), c, margin, beat


asr_mean, asr_min, asr_max, chance, margin, beat = summary(main)
for name, value in {"asr_mean": asr_mean, "asr_min": asr_min, "asr_max": asr_max, "chance": chance,
                    "margin": margin}.items():
    glue(name, 100 * value, display=False)
glue("beat", f"{beat} of {len(main['targets'])}", display=False)
works = beat > len(main["targets"]) / 2
glue("verdict", "holds" if works else "does not hold", display=False)
glue("verdict_detail", "most of the universal perturbations are real attacks, so their pictures show what the model "
     "responds to" if works else "most universal perturbations barely beat chance, so their pictures say little "
     "about what the model responds to", display=False)
std_ok = sum(int(p) == t for p, t in zip(vs["standard_pred"], vs["pair"]))
uni_ok = sum(int(p) == t for p, t in zip(vs["universal_pred"], vs["pair"]))
glue("std_ok", f"{std_ok} of 2", display=False)
glue("uni_ok", f"{uni_ok} of 2", display=False)
glue("pair_names", " and ".join(classes[t] for t in vs["pair"]), display=False)
extra_lines = []
for fig_id, g in out["extras"].items():
    a, _, _, c, m, b = summary(g)
    extra_lines.append(f"{fig_id} ({ARCH_NAMES[g['arch']]}, {g['norm']} eps={g['eps']:.4g}): mean ASR {100 * a:.1f}% "
                       f"against chance {100 * c:.1f}%, {b} of {len(g['targets'])} targets beat chance by more than "
                       f"{100 * m:.1f} points.")
glue("extras_text", Markdown(" ".join(extra_lines) if extra_lines else
                             "The extra galleries I-F12 and I-F13 were not computed at this setting."), display=False)

# %% [markdown]
# ## Verdict
#
# The universal perturbations reach a mean test ASR of {glue:text}`asr_mean:.1f`% (from
# {glue:text}`asr_min:.1f`% to {glue:text}`asr_max:.1f`% across targets) against a mean chance
# level of {glue:text}`chance:.1f`%; {glue:text}`beat` targets beat their chance level by more
# than three binomial standard errors ({glue:text}`margin:.1f` points). The measurable part of
# the claim **{glue:text}`verdict`** at this profile: {glue:text}`verdict_detail`.
#
# In I-F1 the standard perturbation sends its single image to the target for
# {glue:text}`std_ok` targets ({glue:text}`pair_names`); the universal perturbation of the same
# norm budget, not made for that image, sends it there for {glue:text}`uni_ok`.
#
# ```{glue:md} extras_text
# :format: myst
# ```
#
# Whether the universal perturbations show patterns of their target classes, and the standard
# ones do not, is for the reader to judge from I-F1 and I-F2: no number here measures human
# alignment.
