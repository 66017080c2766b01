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
# (gallery)=
# # Gallery
#
# **Claim** ({ref}`claim 1 <claim-1>` of {cite}`park2021distinctive`). Universal perturbations look more human-aligned
# than standard
# adversarial perturbations: amplified, they show patterns of their target class.
#
# **Test (I-F2, I-F1, I-F12, I-F13).** For every target class we solve one targeted universal
# perturbation on the natural ResNet-18: a single delta in the eps-ball that sends a shared base
# set of training images to the target (normalised-gradient PGD over mini-batches, the solver
# shared by all Part I sections). Each is shown amplified with the ±3σ visualisation (clip to
# three standard deviations of the perturbation, then rescale to [0, 1]; grey is zero) and
# scored by its attack success rate on the $n$ images of the whole test split,
#
# $$\mathrm{ASR}(\delta) = \frac{1}{n} \sum_{i=1}^{n} \mathbf{1}\big[C(x_i + \delta) = t\big].$$
#
# Next to two of them we put a standard perturbation (targeted PGD {cite}`madry2018towards` on
# one image, 10 steps of eps/3) of the same budget, and a zoom on the universal perturbation's
# most effective patch (scored as on {ref}`locality`). Whether a picture looks like its class
# cannot be measured; what can be measured is whether the perturbations work, i.e. beat the
# chance level: the share of test images the model
# predicts as the target with no perturbation at all.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Rectangle

from nrf import options, page, reported
from nrf.attacks import visualise
from nrf.sections import gallery as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options gallery`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, t, o = rec["results"], rec["tensors"], rec["options"]
classes, targets, galleries, vs = r["classes"], r["targets"], r["galleries"], r["compare"]
main = galleries["I-F2"]
ARCH = {"resnet18": "ResNet-18", "vgg11": "VGG11"}
paper = options.resolve(section.OPTIONS, "paper")


def sizes(o, n_eval):
    return (
        f"a base set of {o['base_size']:,} training images, {o['solver_epochs']} solver pass(es) in batches of "
        f"{o['solver_batch']}; {o['n_patches']} patches of {vs['patch_size']} px, each scored on {n_eval} test "
        "images"
    )


page.glue_values(
    model=f"natural {ARCH[main['arch']]} (clean test accuracy {100 * main['clean_acc']:.1f}%)",
    threat=f"{main['norm']}, eps = {page.eps_text(main['eps'])}",
    sizes=sizes(o, f"{vs['n_eval']:,}"),
    paper_sizes=sizes(paper, "all" if paper["n_eval"] is None else f"{paper['n_eval']:,}"),
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# Model: {glue:text}`model`; threat model: {glue:text}`threat`. The perturbations were solved
# with {glue:text}`sizes` (the paper profile: {glue:text}`paper_sizes`).


# %% tags=["remove-input"]
def gallery_figure(g, deltas, title):
    """Every target's universal perturbation, titled with its class, test ASR and chance level."""
    cols = min(5, len(targets))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.05 * rows + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, c, d, a, ch in zip(axes.flat, targets, deltas, g["asr"], g["chance"]):
        ax.imshow(visualise(d))
        ax.set_title(f"{classes[c]}\nASR {100 * a:.0f}% (chance {100 * ch:.0f}%)", fontsize=8)
    fig.suptitle(f"{title}: {ARCH[g['arch']]}, {g['norm']} eps={page.eps_text(g['eps'])}", fontsize=10)
    return fig


def missing(fig_id, arch, norm):
    fig, ax = plt.subplots(figsize=(6, 0.5))
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        f"{fig_id} ({ARCH[arch]}, {norm}) is not computed at this setting: set extras=true",
        ha="center",
        va="center",
    )
    return fig


figures = {"fig_I-F2": gallery_figure(main, t["deltas_I-F2"], "I-F2 Gallery")}
for fig_id, (arch, norm) in {"I-F12": ("vgg11", "l2"), "I-F13": ("resnet18", "linf")}.items():
    same = (arch, norm) == (main["arch"], main["norm"])  # the main gallery already is this one
    key = "I-F2" if same else fig_id
    figures[f"fig_{fig_id}"] = (
        gallery_figure(galleries[key], t[f"deltas_{key}"], f"{fig_id} Gallery")
        if key in galleries
        else missing(fig_id, arch, norm)
    )
page.glue_values(**figures)
for fig in figures.values():
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
x = t["image"]
fig, axes = plt.subplots(2, 5, figsize=(9.5, 4.6), layout="constrained")
for row, target in enumerate(vs["pair"]):
    k = targets.index(target)
    top, left = vs["best_corner"][row]
    size = vs["patch_size"]
    std, uni = t["standard"][row], t["deltas_I-F2"][k]
    reached = vs["standard_pred"][row] == target
    panels = [
        (x.permute(1, 2, 0).numpy(), f"test image: {classes[vs['label']]}"),
        (visualise(std), f"standard, target {classes[target]}\n{main['norm']} norm {vs['standard_norm'][row]:.3g}"),
        (
            (x + std).clamp(0, 1).permute(1, 2, 0).numpy(),
            f"image + standard\n-> {classes[vs['standard_pred'][row]]} ({'success' if reached else 'failure'})",
        ),
        (
            visualise(uni),
            f"universal, target {classes[target]}\ntest ASR {100 * main['asr'][k]:.0f}%; "
            f"here -> {classes[vs['universal_pred'][row]]}",
        ),
        (
            visualise(uni)[top : top + size, left : left + size],
            f"best patch alone\nASR {100 * vs['best_asr'][row]:.0f}% (chance {100 * vs['patch_chance'][row]:.0f}%)",
        ),
    ]
    for ax, (img, title) in zip(axes[row], panels):
        ax.imshow(img)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    axes[row, 3].add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="lime", lw=1.5))
fig.suptitle(
    f"I-F1 Standard vs universal: {ARCH[main['arch']]}, {main['norm']} eps={page.eps_text(main['eps'])}", fontsize=10
)
page.glue_values(**{"fig_I-F1": fig})
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_I-F1
# :name: I-F1
#
# **I-F1 Standard vs universal.** For two targets (one per row; by default dog and automobile,
# two of the six classes CIFAR-10 shares with the paper's ImageNet-M10 (bird, cat, dog,
# automobile, truck, ship), fixed before looking at any perturbation; the paper's I-F1 shows
# bird and feline): a correctly classified test image of neither class, a standard targeted
# perturbation of the same norm budget made for that image alone and where it sends the image,
# the universal perturbation of the target and where it sends the same image, and a zoom on its
# most *effective* patch (green square; scored alone, rescaled to the largest patch norm, as on
# {ref}`locality`). The paper zooms on the most *semantic* patch, chosen by eye; the book picks
# the patch by a number, so the zoom need not be the most recognisable part. Both perturbations
# use the ±3σ visualisation.
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

# %% tags=["remove-input"]
table = pd.DataFrame(
    {
        (f"{fig_id}: {ARCH[g['arch']]}, {g['norm']}", what): [100 * v for v in g[key]]
        for fig_id, g in galleries.items()
        for what, key in (("ASR (%)", "asr"), ("chance (%)", "chance"))
    },
    index=pd.Index([classes[c] for c in targets], name="target"),
)
page.glue_values(table_gallery=table.style.format(precision=1))

# %% [markdown]
# ```{glue:table} table_gallery
# :name: gallery-table
#
# **I-F2 (and I-F12, I-F13) in numbers.** Test ASR of every universal perturbation shown, and
# the chance level of its target, on the whole test split.
# ```
#
# ## Verdict
#
# The pictures say something about what the model responds to only if the perturbations are
# real attacks, and I-F1 compares the two kinds of perturbation fairly only if the standard one
# reaches its target on its own image: the verdicts check both. Whether the universal
# perturbations show patterns of their target classes, and the standard ones do not, is for the
# reader to judge from I-F1 and I-F2: no number here measures human alignment.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-F2", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
