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
# # Locality
#
# **Claim (PAPER.md, claim 1).** The attack signal of a universal perturbation is local: some
# of its patches carry much more of it than others, and those are the recognisable ones.
#
# **Test (I-F3, I-F14, I-F15).** For every target class we take the universal perturbation of
# the natural ResNet-18 (the same perturbations as the Gallery), cut random square patches out
# of it and zero everything else. The side of a patch is the paper's 80/224 of the image side
# (11 px on 32 px CIFAR-10). For l2, every patch is rescaled to the largest patch norm of its
# perturbation, so that a patch wins by what it contains and not by how much of the budget it
# happened to hold; linf patches are used as cut. Each patch alone is then scored by its attack
# success rate (ASR: the share of test images it sends to the target, images already predicted
# as the target included, so an ineffective patch scores the chance level). Finally we ask
# whether a patch's ASR simply follows its norm before rescaling (where the solver put its
# budget) with a rank correlation.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
norm = None  # threat model of I-F3 / I-F14: None: the profile's ("l2"); or "linf"
eps = None  # None: 1.0 for l2, 8/255 for linf
target = None  # I-F3's class (name or index); None: "dog", chosen before looking
n_patches = None  # patches per perturbation; None: 64 (paper), 16 (smoke)
patch_size = None  # patch side in pixels; None: round(80/224 * image side) = 11
n_eval = None  # test images each patch is scored on; None: all (paper), 100 (smoke)
patch_seed = None  # draws the patch corners and the scored test images; None: 0
extras = None  # also the other norm (I-F15 beside I-F14); None: on for paper, off for smoke
width = None  # ResNet-18 width of the models; None: the profile's
epochs = None  # training epochs of the models; None: the profile's
seed = None  # model and universal-perturbation seed; None: the profile's

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown
from matplotlib.patches import Rectangle
from myst_nb import glue

from nrf import attacks, report
from nrf.sections import locality as section

out = section.run(profile, data=data, norm=norm, eps=eps, target=target, n_patches=n_patches, patch_size=patch_size,
                  n_eval=n_eval, patch_seed=patch_seed, extras=extras, width=width, epochs=epochs, seed=seed)
cfg, train_data, classes, results = out["cfg"], out["train"], out["classes"], out["results"]
glue("provenance", Markdown(report.provenance(cfg, train_data, out["hardware"])), display=False)
main = results[out["norm"]]
n_eval_used = len(main["scores"]["eval_index"])
glue("n_patches", out["options"]["n_patches"], display=False)
glue("patch_size", out["options"]["patch_size"], display=False)
glue("n_eval", n_eval_used, display=False)
glue("threat", f"{out['norm']}, eps = {main['eps']:.4g}", display=False)
glue("profile_note", "" if profile == "paper" else (
    f" The `{profile}` profile cuts {out['options']['n_patches']} patches instead of the paper's 64 and scores them "
    f"on {n_eval_used} random test images instead of all of them, to fit a CPU budget; its models are narrow and "
    "briefly trained, so its numbers show the method working, not the paper's effect sizes."), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# Threat model: {glue:text}`threat`. Each perturbation gives {glue:text}`n_patches` patches of
# {glue:text}`patch_size` x {glue:text}`patch_size` pixels (the same random corners for every
# target), each scored on {glue:text}`n_eval` test images.{glue:text}`profile_note`

# %% tags=["remove-input"]
def shown_patch(delta, corner, size):
    """The perturbation's +-3 sigma picture inside the patch, mid-grey (zero) outside: the patch
    is shown at the colour scale of the whole perturbation (rescaling only changes contrast)."""
    vis, out = attacks.visualise(delta), np.full((delta.shape[-2], delta.shape[-1], 3), 0.5)
    top, left = int(corner[0]), int(corner[1])
    out[top:top + size, left:left + size] = vis[top:top + size, left:left + size]
    return out


def outline(ax, corner, size, colour):
    ax.add_patch(Rectangle((int(corner[1]) - 0.5, int(corner[0]) - 0.5), size, size, fill=False, lw=1.5, ec=colour))


def patch_row(axes, r, row, with_names):
    """One target: its perturbation (best patches outlined green, worst red), 3 best, 2 worst patches."""
    s, t = r["scores"], out["targets"][row]
    order = s["asr"][row].argsort(descending=True, stable=True)
    picks = [("best", i, int(p)) for i, p in enumerate(order[:3])] + [("worst", i, int(p)) for i, p in enumerate(order.flip(0)[:2])]
    axes[0].imshow(attacks.visualise(r["deltas"][row]))
    axes[0].set_title(("whole\n" if with_names else "") + f"ASR {100 * s['full'][row]:.0f}%", fontsize=9)
    axes[0].set_ylabel(classes[t], fontsize=9)
    for ax, (kind, i, p) in zip(axes[1:], picks):
        outline(axes[0], s["corners"][p], s["size"], "lime" if kind == "best" else "red")
        ax.imshow(shown_patch(r["deltas"][row], s["corners"][p], s["size"]))
        outline(ax, s["corners"][p], s["size"], "lime" if kind == "best" else "red")
        ax.set_title((f"{kind} {i + 1}\n" if with_names else "") + f"ASR {100 * s['asr'][row, p]:.0f}%", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


r = main
row = out["targets"].index(out["target"])
fig, axes = plt.subplots(1, 6, figsize=(9, 2.2), layout="constrained")
patch_row(axes, r, row, with_names=True)
fig.suptitle(f"I-F3 Locality: target {classes[out['target']]}, {r['norm']} eps={r['eps']:.4g}, "
             f"chance {100 * r['scores']['chance'][row]:.0f}% ({report.stamp(cfg, train_data)})", fontsize=10)
glue("fig_I-F3", fig, display=False)
plt.close(fig)


def all_classes(r, fig_id):
    n = len(out["targets"])
    fig, axes = plt.subplots(n, 6, figsize=(7.5, 1.2 * n + 0.7), squeeze=False, layout="constrained")
    for row in range(n):
        patch_row(axes[row], r, row, with_names=row == 0)
    fig.suptitle(f"{fig_id} Locality, all classes: {r['norm']} eps={r['eps']:.4g}\n({report.stamp(cfg, train_data)})",
                 fontsize=10)
    return fig


for nm, fig_id in (("l2", "I-F14"), ("linf", "I-F15")):
    if nm in results:
        fig = all_classes(results[nm], fig_id)
    else:
        fig, ax = plt.subplots(figsize=(6, 0.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{fig_id} ({nm}) is not computed at this setting: set norm='{nm}' or extras=True",
                ha="center", va="center")
    glue(f"fig_{fig_id}", fig, display=False)
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
rows = []
for nm, r in results.items():
    s = r["scores"]
    for row, t in enumerate(out["targets"]):
        a = s["asr"][row]
        rows.append({"norm": nm, "target": classes[t], "whole (%)": 100 * s["full"][row].item(),
                     "best patch (%)": 100 * a.max().item(), "median patch (%)": 100 * a.median().item(),
                     "worst patch (%)": 100 * a.min().item(), "chance (%)": 100 * s["chance"][row].item(),
                     "rank corr. with norm": r["rho"][row].item()})
table = pd.DataFrame(rows).set_index(["norm", "target"])
glue("table_locality", table.style.format(precision=1, na_rep="n/a").format("{:.2f}", subset=["rank corr. with norm"], na_rep="n/a"),
     display=False)

fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results) + 1.2, 3.8), squeeze=False, layout="constrained")
for ax, (nm, r) in zip(axes[0], results.items()):
    s = r["scores"]
    for row, t in enumerate(out["targets"]):
        rel = s["norms"][row] / s["norms"][row].max()
        ax.scatter(rel, 100 * (s["asr"][row] - s["chance"][row]), s=14, alpha=0.75, label=classes[t],
                   color=plt.cm.tab10(t % 10))
    ax.axhline(0, color="grey", ls="--", lw=1, label="chance")
    rho = r["rho"][~r["rho"].isnan()]
    ax.set(xlabel="patch l2 norm before rescaling / largest patch norm", ylabel="patch ASR - chance (points)",
           title=f"{nm} eps={r['eps']:.4g}: Spearman rho mean {rho.mean():.2f}" if len(rho) else f"{nm} eps={r['eps']:.4g}")
axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.suptitle(f"Patch ASR against patch norm ({report.stamp(cfg, train_data)})", fontsize=10)
glue("fig_norm", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} table_locality
# :name: locality-table
#
# **I-F14 / I-F15 in numbers.** Per target: ASR of the whole perturbation and of its best, median
# and worst patch on the scored test images, the chance level on the same images, and the
# Spearman rank correlation between a patch's ASR and its l2 norm before rescaling.
# ```
#
# ```{glue:figure} fig_norm
# :name: locality-norm
#
# **I-F14 / I-F15: does attack signal follow the norm?** Every patch of every target: its ASR
# above the target's chance level against its l2 norm before rescaling (relative to the largest
# patch of the same perturbation); chance is dashed. A strong rank correlation would mean that a patch wins
# because the solver spent more of the budget there; a weak one, that the content of the patch
# matters at equal norm.
# ```

# %% tags=["remove-cell"]
s = main["scores"]
best, worst, chance = s["asr"].amax(1), s["asr"].amin(1), s["chance"]
c = chance.mean().item()
margin = 3 * (c * (1 - c) / n_eval_used) ** 0.5  # three binomial standard errors at chance
beat = int(((best - chance) > margin).sum())
spread = (best - worst).mean().item()
rho = main["rho"][~main["rho"].isnan()]
for name, value in {"best": best.mean(), "worst": worst.mean(), "chance": c, "spread": spread, "margin": margin,
                    "best_max": best.max(), "whole": s["full"].mean()}.items():
    glue(f"loc_{name}", 100 * float(value), display=False)
glue("loc_beat", f"{beat} of {len(best)}", display=False)
lift = (s["full"] - chance).mean().item()  # what the whole perturbation adds over chance on the same images
if lift <= margin:
    verdict, detail = "cannot be tested at this profile", (
        f"even the whole perturbations lift ASR over chance by only {100 * lift:.1f} points on the scored images, "
        "within the noise margin, so their patches cannot be told apart: score more images (n_eval) or use the "
        "paper profile's stronger models")
elif spread > margin and beat > len(best) / 2:
    verdict, detail = "holds", "patches of the same norm differ widely in attack signal, and the best ones alone beat chance"
else:
    verdict, detail = "does not hold", "the patches do not separate clearly from one another or from chance"
glue("loc_verdict", verdict, display=False)
glue("loc_verdict_detail", detail, display=False)
others = []
for nm, r in results.items():
    if nm != out["norm"]:
        a, rr = r["scores"]["asr"], r["rho"][~r["rho"].isnan()]
        others.append(f"Under {nm} (eps {r['eps']:.4g}; {'I-F15' if nm == 'linf' else 'I-F14'}) the best patch reaches on average "
                      f"{100 * a.amax(1).mean():.1f}% ASR and the worst {100 * a.amin(1).mean():.1f}%, against chance "
                      f"{100 * r['scores']['chance'].mean():.1f}%; the mean rank correlation with the norm is "
                      + (f"{rr.mean():.2f}." if len(rr) else "undefined."))
glue("loc_others", Markdown(" ".join(others)), display=False)
if len(rho):
    strength = "strongly" if abs(rho.mean()) >= 0.5 else "weakly" if abs(rho.mean()) >= 0.2 else "hardly"
    glue("loc_rho", f"{rho.mean():.2f} (from {rho.min():.2f} to {rho.max():.2f} across {len(rho)} targets)", display=False)
    glue("loc_rho_verdict", f"{strength} {'follows' if rho.mean() >= 0 else 'runs against'} where the perturbation "
         "put its budget", display=False)
else:
    glue("loc_rho", "undefined (every patch scored the same)", display=False)
    glue("loc_rho_verdict", "cannot be related to the norm", display=False)

# %% [markdown]
# ## Verdict
#
# At this profile and threat model, the best patch of each perturbation reaches on average
# {glue:text}`loc_best:.1f`% ASR (at most {glue:text}`loc_best_max:.1f`%), the worst
# {glue:text}`loc_worst:.1f`%, against a chance level of {glue:text}`loc_chance:.1f`% and
# {glue:text}`loc_whole:.1f`% for the whole perturbation. The spread between best and worst patch
# is {glue:text}`loc_spread:.1f` percentage points on average, and the best patch beats chance by
# more than three binomial standard errors ({glue:text}`loc_margin:.1f` points) for
# {glue:text}`loc_beat` targets. The locality claim, in its measurable part,
# **{glue:text}`loc_verdict`**: {glue:text}`loc_verdict_detail`. The patch ASR's rank correlation
# with the patch norm before rescaling is {glue:text}`loc_rho`, so the attack signal
# {glue:text}`loc_rho_verdict`.
#
# ```{glue:md} loc_others
# :format: myst
# ```
#
# Whether the best patches are also the most *recognisable* parts of the perturbations cannot
# be measured here: compare the green and red patches in I-F3 and I-F14 and judge.
