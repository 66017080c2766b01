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
# # Models
#
# Every later section attacks or probes the same few trained models. This section trains them
# (or loads them from the artifact store) and reports their clean and robust test accuracy:
# table I-T7 of the spec.
#
# - **natural**: CIFAR ResNet-18, natural training (SGD, momentum 0.9, weight decay 5e-4, random
#   crop with 4 px padding and horizontal flip, step decay of the learning rate).
# - **natural_seed1**: the same with another seed, for transfer and scaling checks.
# - **robust**: the same recipe with PGD adversarial training (l2, 3 steps of 2/3 eps).
# - **vgg16**, **vgg11**: VGG16-BN and VGG11-BN, for transfer, leakage and one gallery.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (embedded sample, CPU minutes) or "paper" (full CIFAR-10, GPU)
data = None  # None: the profile's; "sample", "cifar10" (full, where present) or a path
width = None  # ResNet-18 base width (64 is the paper's); None: the profile's
epochs = None  # natural training epochs; None: the profile's
robust_epochs = None  # adversarial training epochs; None: the profile's
eps = None  # l2 threat model of the robust model and of robust accuracy; None: 1.0
seed = None  # seed of the first model (the second natural model uses seed + 1)

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from nrf import report
from nrf.sections import models as section

out = section.run(profile, data=data, width=width, epochs=epochs, robust_epochs=robust_epochs, eps=eps, seed=seed)
cfg, train_data, metas = out["cfg"], out["train"], out["models"]
hardware = {m["provenance"]["hardware"] for m in metas.values()}
glue("provenance", Markdown(report.provenance(cfg, train_data, hardware)), display=False)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```

# %% tags=["remove-input"]
def training_label(m):
    if m["adv"] is None:
        return "natural"
    return f"PGD {m['adv']['norm']} eps={m['adv']['eps']:g}, {m['adv']['steps']} steps"


table = pd.DataFrame(
    [
        {
            "model": role,
            "architecture": f"{m['arch']} (width {m['width']})",
            "seed": m["seed"],
            "training": training_label(m),
            "epochs": m["epochs"],
            "clean acc. (%)": 100 * m["clean_acc"],
            f"robust acc. (%, {cfg['norm']} eps={cfg['eps']:g})": 100 * m["robust_acc"],
            "train time (s)": m["provenance"]["seconds"],
        }
        for role, m in metas.items()
    ]
).set_index("model")
glue("table_I-T7", table.style.format(precision=1), display=False)
for role, m in metas.items():
    glue(f"clean_{role}", 100 * m["clean_acc"], display=False)
    glue(f"robust_{role}", 100 * m["robust_acc"], display=False)
gap = metas["robust"]["robust_acc"] - metas["natural"]["robust_acc"]
glue("robust_gap", 100 * gap, display=False)
glue("robust_verdict", "more" if gap > 0 else "not more", display=False)

# %% [markdown]
# ```{glue:figure} table_I-T7
# :name: I-T7
#
# **I-T7 Models.** Clean and robust test accuracy of every trained model (robust: untargeted
# PGD at the training eps, on the whole test split of the data named above).
# ```
#
# The natural ResNet-18 reaches {glue:text}`clean_natural:.1f`% clean accuracy and
# {glue:text}`robust_natural:.1f`% under attack; the adversarially trained one reaches
# {glue:text}`clean_robust:.1f`% clean and {glue:text}`robust_robust:.1f`% under attack, so it is
# {glue:text}`robust_verdict` robust than the natural model, by {glue:text}`robust_gap:.1f`
# percentage points: the later sections can use it as the robust reference.

# %% tags=["remove-input"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for role, m in metas.items():
    ax.plot(range(1, len(m["history"]["test_acc"]) + 1), [100 * a for a in m["history"]["test_acc"]], label=role)
ax.set(xlabel="epoch", ylabel="clean test accuracy (%)", title=f"Training curves ({report.stamp(cfg, train_data)})")
ax.legend()
fig.tight_layout()
glue("fig_curves", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_curves
# :name: models-curves
#
# Clean test accuracy after each epoch of training, for every model of I-T7.
# ```
