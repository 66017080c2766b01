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
# # Appendix: computing universal perturbations
#
# How the book's universal perturbations are computed, and what else the solver can be fed. A
# targeted universal perturbation for target t is one delta in the eps-ball that minimises the
# mean cross-entropy toward t over a **base set** of K training images, found by projected,
# normalised gradient steps on mini-batches of the base set (PAPER.md, "Definitions"). The
# paper fixed its step size for 224 px images and asks for a step scaled to the data set,
# justified by the learning dynamics (I-F9). Every measurement on this page is on the natural
# ResNet-18; the attack success rate (ASR) of a perturbation is the share of held-out test
# images that it sends to the target, and its chance level is the share that the model
# predicts as the target anyway.
#
# - **I-F9 Learning dynamics.** The base-set ASR during each epoch of the solver (read off the
#   solver's own forward passes, like a running training accuracy) while the step size, the
#   mini-batch size and K vary one at a time around a centre setting whose step is the one
#   every other page uses (`nrf.universals.SOLVER`), and the test ASR of each final
#   perturbation: the gap between the two shows how much a small base set overfits.
# - **I-A6 Alternate base sets.** The base set is K random augmentations of one training image.
#   Its universal perturbation is compared with one from K ordinary training images and with a
#   standard PGD perturbation of that image, on the test images of this model and of a second
#   natural ResNet-18 (another seed).
# - **I-F17 Diversity.** Several universal perturbations for one target from random starts,
#   then the same runs with a penalty that pushes apart what they do to the network's
#   representations, and their pairwise similarity.
# - **I-F18 Subclass targets** need fine-grained labels.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # ResNet-18 base width of both natural models; None: the profile's
epochs = None  # their training epochs; None: the profile's
seed = None  # seed of the first natural model, of the base sets, augmentations, starts and test images
norm = None  # "l2" or "linf"; None: the profile's (l2)
eps = None  # perturbation budget; None: 1.0 for l2, 8/255 for linf
targets = None  # I-F9's target classes (names or indices); None: the profile's (paper: all)
target = None  # the one target of I-A6 and I-F17; None: "dog"
steps = None  # I-F9's step sizes as fractions of eps; None: 0.05, 0.1, 0.2, 0.5, 1
step = None  # the centre step (fraction of eps); None: the one nrf.universals.SOLVER uses (0.2)
batches = None  # I-F9's mini-batch sizes (per perturbation); None: the profile's
batch = None  # the centre mini-batch size, also of I-A6 and I-F17; None: the profile's
base_sizes = None  # I-F9's base-set sizes K; None: the profile's
base_size = None  # the centre K, also I-A6's number of augmentations and I-F17's base set; None: the profile's
solver_epochs = None  # passes over the base set, everywhere; None: the profile's
n_eval = None  # held-out test images of every ASR; None: the profile's (paper: all)
image = None  # I-A6's training image (index); None: a seeded one of another class, outside the base set
augment = None  # I-A6's augmentation: "crop_flip" or "resized_crop_flip"; None: "resized_crop_flip"
n_diverse = None  # I-F17's number of perturbations; None: 4
penalty = None  # I-F17's weight of the orthogonality penalty (> 0); None: 3
layers = None  # I-F17's layers (of "layer1".."layer4", "features"); None: the four residual stages

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown
from matplotlib.gridspec import GridSpec
from myst_nb import glue

from nrf import attacks, diversity, report
from nrf import data as nrf_data
from nrf.sections import appendix as section

out = section.run(profile, data=data, width=width, epochs=epochs, seed=seed, norm=norm, eps=eps, targets=targets,
                  target=target, steps=steps, step=step, batches=batches, batch=batch, base_sizes=base_sizes,
                  base_size=base_size, solver_epochs=solver_epochs, n_eval=n_eval, image=image, augment=augment,
                  n_diverse=n_diverse, penalty=penalty, layers=layers)
cfg, train_data, opts = out["cfg"], out["train"], out["options"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-cell"]
stamp = report.stamp(cfg, train_data)
classes, dyn, aug, div = out["classes"], out["dynamics"], out["augmented"], out["diverse"]
c_step, c_batch, c_k = out["centre"]
n_eval_used = len(dyn["eval_index"])
glue("threat", f"{out['norm']} eps = {out['eps']:.4g}", display=False)
glue("clean_natural", 100 * out["clean_acc"]["natural"], display=False)
glue("clean_seed1", 100 * out["clean_acc"]["natural_seed1"], display=False)
glue("centre", f"step {c_step:g} eps, mini-batches of {c_batch}, K = {c_k}", display=False)
glue("solver_epochs", opts["solver_epochs"], display=False)
glue("n_eval", n_eval_used, display=False)
glue("f9_targets", ", ".join(classes[t] for t in out["targets"]), display=False)
glue("target_name", classes[out["target"]], display=False)

# %% [markdown]
# The natural ResNet-18 has clean test accuracy {glue:text}`clean_natural:.1f`% (the second
# one, used only for transfer in I-A6, {glue:text}`clean_seed1:.1f`%). Threat model:
# {glue:text}`threat`. Centre setting: {glue:text}`centre`, {glue:text}`solver_epochs` epochs.
# Every test ASR is measured on the same {glue:text}`n_eval` held-out test images.
#
# ## I-F9 Learning dynamics

# %% tags=["remove-cell"]
settings = [tuple(s) for s in dyn["settings"]]
curves = 100 * dyn["curves"]  # [S, epochs, T]
final_test, final_base = 100 * dyn["asr"], 100 * dyn["base_asr"]  # [S, T]
chance9 = 100 * dyn["chance"].mean().item()
FACTORS = {  # panel: (index of the varied factor in a setting, label of a value, values)
    "step size": (0, lambda v: f"{v:g} eps", sorted({c_step, *out["steps"]})),
    "mini-batch size": (1, lambda v: f"batch {v}", sorted({c_batch, *out["batches"]})),
    "base-set size K": (2, lambda v: f"K = {v}", sorted({c_k, *out["base_sizes"]})),
}


def rows(factor):
    """Indices of the settings of one panel (the other two factors at the centre), by value."""
    i, _, values = FACTORS[factor]
    centre = [c_step, c_batch, c_k]
    return [settings.index(tuple(v if j == i else centre[j] for j in range(3))) for v in values]


epoch_axis = torch.arange(1, curves.shape[1] + 1)
fig, axes = plt.subplots(2, 3, figsize=(11.5, 6.6))
for col, factor in enumerate(FACTORS):
    i, label, values = FACTORS[factor]
    idx = rows(factor)
    colours = plt.cm.viridis(torch.linspace(0, 0.9, len(idx)).numpy())
    for colour, r, v in zip(colours, idx, values):
        centre = settings[r] == (c_step, c_batch, c_k)
        axes[0, col].plot(epoch_axis, curves[r].mean(1), marker="o", ms=3, color="k" if centre else colour,
                          lw=2.2 if centre else 1.2, label=label(v) + (" (centre)" if centre else ""))
    axes[0, col].set(xlabel="epoch", title=f"varying the {factor}")
    axes[0, col].legend(fontsize=7)
    axes[1, col].errorbar(values, final_base[idx].mean(1), final_base[idx].std(1, unbiased=False), marker="o",
                          capsize=3, label="its own base set")
    axes[1, col].errorbar(values, final_test[idx].mean(1), final_test[idx].std(1, unbiased=False), marker="s",
                          capsize=3, label="held-out test images")
    axes[1, col].axhline(chance9, color="grey", ls=":", lw=1, label="chance (test)")
    axes[1, col].set(xscale="log", xlabel=factor)
    axes[1, col].set_xticks(values, [f"{v:g}" for v in values])
    axes[1, col].minorticks_off()
axes[0, 0].set_ylabel("base-set ASR during the epoch (%)")
axes[1, 0].set_ylabel("ASR of the final perturbation (%)")
axes[1, 0].legend(fontsize=7)
fig.suptitle(f"Learning dynamics of the universal-perturbation solver ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_dynamics", fig, display=False)
plt.close(fig)

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

# %% tags=["remove-cell"]
step_rows = rows("step size")
step_values = FACTORS["step size"][2]
on_base = section.best_step(final_base[step_rows], step_values, c_step)
on_test = section.best_step(final_test[step_rows], step_values, c_step)


def step_sentence(v, where):
    """One sentence of the step verdict from a section.best_step result."""
    tied = f", tied with {', '.join(f'{t:g}' for t in v['tied'])} eps" if v["tied"] else ""
    if v["best"] == c_step:
        return f"{where} step {c_step:g} eps reaches the highest final ASR ({v['best_mean']:.1f}%{tied})"
    noise = "within noise of the best" if v["within_noise"] else "worse than the best by more than two standard errors"
    return (f"{where} the highest final ASR comes with step {v['best']:g} eps ({v['best_mean']:.1f}%{tied}); step "
            f"{c_step:g} eps reaches {v['centre_mean']:.1f}%, {v['diff']:.1f} points less (± {v['se']:.1f}, one "
            f"standard error of the paired difference over the {len(out['targets'])} targets): {noise}")


glue("step_base", step_sentence(on_base, "On the base set"), display=False)
glue("step_test", step_sentence(on_test, "On held-out test images"), display=False)
glue("step_verdict", (f"backs the step {c_step:g} eps" if on_base["within_noise"] and on_test["within_noise"]
                      else f"does not back the step {c_step:g} eps"), display=False)
k_rows, k_values = rows("base-set size K"), FACTORS["base-set size K"][2]
gaps = [(final_base[r] - final_test[r]).mean().item() for r in k_rows]
glue("k_small", k_values[0], display=False)
glue("k_large", k_values[-1], display=False)
glue("gap_small", gaps[0], display=False)
glue("gap_large", gaps[-1], display=False)
glue("test_small", final_test[k_rows[0]].mean().item(), display=False)
glue("test_large", final_test[k_rows[-1]].mean().item(), display=False)
glue("k_verdict", "the smallest base set overfits most (its ASR on its own base set exceeds its test ASR by more than "
     "the largest base set's does)" if gaps[0] > gaps[-1] else
     "the smallest base set does not overfit more than the largest", display=False)
b_rows, b_values = rows("mini-batch size"), FACTORS["mini-batch size"][2]
b_test = [final_test[r].mean().item() for r in b_rows]
glue("batch_best", f"batch {b_values[max(range(len(b_values)), key=lambda j: b_test[j])]}", display=False)
glue("batch_range", f"{min(b_test):.1f}% to {max(b_test):.1f}%", display=False)
centre_test = final_test[settings.index((c_step, c_batch, c_k))].mean().item()
glue("centre_test", centre_test, display=False)
glue("chance9", chance9, display=False)
weak = centre_test - chance9 < 10
glue("weak9", ("At this profile the centre setting's perturbations beat chance by less than 10 points, so the "
               "differences between settings are small next to the noise of a few targets and a few hundred test "
               "images: the verdict only says whether the step is unreasonable, and the paper profile is needed to "
               "read the shape of the curves." if weak else
               "The centre setting's perturbations beat chance by more than 10 points, so the comparison between "
               "settings is not drowned by chance-level noise."), display=False)

# %% [markdown]
# {glue:text}`step_base`. {glue:text}`step_test`. (A step is "within noise" of the best when
# its mean paired shortfall against it is at most two standard errors.) I-F9 therefore
# {glue:text}`step_verdict` used by every other page. Across base-set sizes,
# {glue:text}`k_verdict`: K = {glue:text}`k_small` reaches {glue:text}`test_small:.1f`% on test
# images with a base-set excess of {glue:text}`gap_small:.1f` points, K = {glue:text}`k_large`
# {glue:text}`test_large:.1f`% with {glue:text}`gap_large:.1f` points. The mini-batch sizes
# give {glue:text}`batch_range` on test images (best: {glue:text}`batch_best`). The centre
# setting reaches {glue:text}`centre_test:.1f`% (chance {glue:text}`chance9:.1f`%).
# {glue:text}`weak9`
#
# ## I-A6 Alternate base sets

# %% tags=["remove-cell"]
KINDS = {"augmented": "K augmentations\nof one image", "ordinary": "K ordinary\ntraining images",
         "standard": "standard PGD\non the image"}
ROLES = {"natural": "natural", "natural_seed1": "natural, other seed"}
img = train_data.x[out["image"]]
fig = plt.figure(figsize=(11, 5.2))
gs = GridSpec(2, 6, figure=fig)
pictures = [("the image\n" + f"({classes[int(train_data.y[out['image']])]}, #{out['image']})",
             nrf_data.to_float(img))] + [(f"augmentation {j + 1}", a) for j, a in enumerate(aug["augmentations"][:5])]
for j, (title, picture) in enumerate(pictures):
    ax = fig.add_subplot(gs[0, j])
    ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=7)
    ax.axis("off")
for j, (kind, name) in enumerate(KINDS.items()):
    ax = fig.add_subplot(gs[1, j])
    ax.imshow(attacks.visualise(aug["deltas"][kind]), interpolation="nearest")
    ax.set_title(f"{name}\ntest ASR {100 * aug['asr']['natural'][kind]:.1f}%", fontsize=7)
    ax.axis("off")
ax = fig.add_subplot(gs[1, 3:])
width_bar = 0.38
for r, (role, name) in enumerate(ROLES.items()):
    xs = torch.arange(len(KINDS)) + (r - 0.5) * width_bar
    ax.bar(xs.numpy(), [100 * aug["asr"][role][k] for k in KINDS], width_bar, label=f"on {name}", color=f"C{r}")
    ax.hlines(100 * aug["chance"][role], xs[0] - width_bar / 2, xs[-1] + width_bar / 2, color=f"C{r}", ls=":",
              lw=1)
ax.set_xticks(range(len(KINDS)), [n.replace("\n", " ") for n in KINDS.values()], fontsize=7)
ax.set(ylabel="test ASR (%)")
ax.legend(fontsize=7)
fig.suptitle(f"Target {classes[out['target']]}: base set of K = {c_k} augmentations of one image ({stamp})",
             fontsize=9)
fig.tight_layout()
glue("fig_augmented", fig, display=False)
plt.close(fig)

# %% [markdown]
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

# %% tags=["remove-cell"]
n_used = len(aug["eval_index"])


def versus(a, b):
    """'above' / 'below' / 'level with': a against b, two binomial standard errors of their difference."""
    se = ((a * (1 - a) + b * (1 - b)) / n_used) ** 0.5
    return "above" if a - b > 2 * se else "below" if b - a > 2 * se else "level with"


for role in ROLES:
    for kind in KINDS:
        glue(f"a6_{role}_{kind}", 100 * aug["asr"][role][kind], display=False)
    glue(f"a6_{role}_chance", 100 * aug["chance"][role], display=False)
glue("a6_augment", {"crop_flip": "random crops from the image padded by 4 px, and horizontal flips (the CIFAR "
                                 "training augmentation)",
                    "resized_crop_flip": "random resized crops (8% to 100% of the area, aspect 3/4 to 4/3, resized "
                                         "back to full size) and horizontal flips (the ImageNet training "
                                         "augmentation)"}[opts["augment"]], display=False)
glue("a6_base", 100 * aug["base_asr"]["augmented"], display=False)
glue("a6_own", "fools" if aug["own"]["augmented"] else "does not fool", display=False)
glue("a6_std_own", "fools" if aug["own"]["standard"] else "does not fool", display=False)
a = aug["asr"]
glue("a6_verdict", (f"on the model it was made on, the augmented base set's perturbation transfers to new images "
                    f"{versus(a['natural']['augmented'], a['natural']['standard'])} the standard perturbation and "
                    f"{versus(a['natural']['augmented'], a['natural']['ordinary'])} the ordinary universal one; on "
                    f"the second model it is {versus(a['natural_seed1']['augmented'], a['natural_seed1']['standard'])}"
                    f" the standard and {versus(a['natural_seed1']['augmented'], a['natural_seed1']['ordinary'])} "
                    f"the ordinary one"), display=False)
glue("a6_weak", "" if max(a["natural"].values()) - aug["chance"]["natural"] >= 0.1 else
     "At this profile none of the three beats chance by 10 points on the model it was made on, so the comparison "
     "says little about the paper's setting.", display=False)

# %% [markdown]
# The augmentations are {glue:text}`a6_augment`, drawn from a seeded generator on the device.
# The augmented base set's perturbation sends {glue:text}`a6_base:.1f`% of its own augmentations
# to {glue:text}`target_name` in its last epoch and {glue:text}`a6_own` the original image; the
# standard perturbation {glue:text}`a6_std_own` it. On held-out test images of the natural model
# the three reach {glue:text}`a6_natural_augmented:.1f`% (augmented),
# {glue:text}`a6_natural_ordinary:.1f`% (ordinary base set) and
# {glue:text}`a6_natural_standard:.1f`% (standard), chance {glue:text}`a6_natural_chance:.1f`%;
# on the second natural model {glue:text}`a6_natural_seed1_augmented:.1f`%,
# {glue:text}`a6_natural_seed1_ordinary:.1f`% and {glue:text}`a6_natural_seed1_standard:.1f`%,
# chance {glue:text}`a6_natural_seed1_chance:.1f`%. Counting a difference when it exceeds two
# binomial standard errors over these test images: {glue:text}`a6_verdict`.
# {glue:text}`a6_weak`
#
# ## I-F17 Diversity

# %% tags=["remove-cell"]
n = len(div["plain"]["deltas"])
RUNS = {"plain": "random starts", "penalised": f"random starts + penalty (weight {opts['penalty']:g})"}
fig, axes = plt.subplots(2, n + 2, figsize=(1.55 * n + 5.6, 5.4), gridspec_kw={"width_ratios": [1] * n + [1.6, 1.6]})
for r, (run, name) in enumerate(RUNS.items()):
    res = div[run]
    for i in range(n):
        ax = axes[r, i]
        ax.imshow(attacks.visualise(res["deltas"][i]), interpolation="nearest")
        ax.set_title(f"#{i + 1}: ASR {100 * res['asr'][i]:.1f}%", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[r, 0].set_ylabel(name, fontsize=8)
    for ax, matrix, what in ((axes[r, n], res["pixel"], "pixel space"),
                             (axes[r, n + 1], res["representation"].mean(0), "representation\n(mean over layers)")):
        ax.imshow(matrix.numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
        for (i, j), v in zip(torch.cartesian_prod(torch.arange(n), torch.arange(n)).tolist(), matrix.flatten()):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(n), [f"#{i + 1}" for i in range(n)], fontsize=6)
        ax.set_yticks(range(n), [f"#{i + 1}" for i in range(n)], fontsize=6)
        ax.set_title(f"cosine, {what}", fontsize=7)
fig.suptitle(f"{n} universal perturbations toward {classes[out['target']]} ({stamp})", fontsize=9)
fig.tight_layout()
glue("fig_diversity", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_diversity
# :name: I-F17
#
# **I-F17 Diversity.** Top: universal perturbations toward one target from different random
# starts (uniform in the eps-ball) on one base set; bottom: the same runs (same starts, same
# mini-batch order) with the orthogonality penalty. Each is shown with the ±3 sigma
# visualisation and its test ASR. Right: cosine similarity of every pair, between the
# perturbations themselves (pixel space) and between the feature changes they induce on the
# held-out test images (representation space: mean over images and over the penalised layers).
# ```

# %% tags=["remove-cell"]
def mean_off(m):
    return diversity.off_diagonal(m).mean().item()


for run in RUNS:
    glue(f"f17_{run}_pixel", mean_off(div[run]["pixel"]), display=False)
    glue(f"f17_{run}_rep", mean_off(div[run]["representation"]), display=False)
    glue(f"f17_{run}_asr", 100 * div[run]["asr"].mean().item(), display=False)
    glue(f"f17_{run}_layers", ", ".join(f"{name} {mean_off(m):.2f}" for name, m in
                                        zip(opts["layers"], div[run]["representation"])), display=False)
glue("f17_chance", 100 * div["chance"], display=False)
glue("f17_n", n, display=False)
glue("f17_weight", f"{opts['penalty']:g}", display=False)
glue("f17_layers", ", ".join(opts["layers"]), display=False)
drop_rep = mean_off(div["plain"]["representation"]) - mean_off(div["penalised"]["representation"])
cost = 100 * (div["plain"]["asr"].mean() - div["penalised"]["asr"].mean()).item()
plain_alike = mean_off(div["plain"]["pixel"]) > 0.5
glue("f17_starts", "random starts alone end in nearly the same perturbation (mean pixel cosine above 0.5): the "
     "solver forgets where it started" if plain_alike else
     "random starts alone already give distinct perturbations (mean pixel cosine at most 0.5)", display=False)
glue("f17_verdict", (f"the penalty {'lowers' if drop_rep > 0.1 else 'barely changes'} the representation "
                     f"similarity (by {drop_rep:.2f}) at a cost of {cost:.1f} points of mean test ASR"), display=False)
glue("f17_weak", "" if div["plain"]["asr"].mean().item() - div["chance"] >= 0.1 else
     "At this profile the perturbations beat chance by less than 10 points, so whether diverse perturbations stay "
     "as effective is not tested here.", display=False)

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
# **Result.** Without the penalty the mean pairwise cosine is {glue:text}`f17_plain_pixel:.2f`
# in pixel space and {glue:text}`f17_plain_rep:.2f` in representation space (per layer:
# {glue:text}`f17_plain_layers`), at a mean test ASR of {glue:text}`f17_plain_asr:.1f`%; with it
# {glue:text}`f17_penalised_pixel:.2f` and {glue:text}`f17_penalised_rep:.2f`
# ({glue:text}`f17_penalised_layers`), at {glue:text}`f17_penalised_asr:.1f`% (chance
# {glue:text}`f17_chance:.1f`%). So {glue:text}`f17_starts`, and {glue:text}`f17_verdict`.
# {glue:text}`f17_weak`
#
# ## I-F18 Subclass targets

# %% tags=["remove-cell"]
if out["fine_classes"] is None:
    f18 = (f"**Not applicable to this data set.** The training data (`{train_data.identity}`) has no fine-grained "
           f"labels (its `fine_y` is None): its {len(classes)} classes have no subclasses to target. Where fine labels "
           "exist (ImageNet-M10, whose 60 ImageNet classes are the subclasses of its 10 super-classes), I-F18 trains a "
           "ResNet-18 on the fine labels and computes a universal perturbation toward each fine class, to see "
           "whether subclass targets give more specific patterns. Nothing is computed for it on this page.")
else:
    f18 = (f"The training data has {out['fine_classes']} fine-grained classes, but this book does not implement "
           "I-F18 yet (a ResNet-18 trained on the fine labels and a universal perturbation toward each fine class): "
           "nothing is computed for it on this page.")
glue("f18", Markdown(f18), display=False)

# %% [markdown]
# ```{glue:md} f18
# :format: myst
# ```
