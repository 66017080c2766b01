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
# (constructed_training)=
# # One sweep point: training on a constructed data set
#
# Not a page of the book: the notebook that `nrf sweep constructed_training` runs once per
# point of a hyperparameter grid, points in parallel. It trains a fresh ResNet-18 on one
# constructed data set (`dataset`) with one setting (`train_lr`, `train_batch_size`, `decay`)
# and tests it on the clean test set. The training run is the store artifact that the
# Generalisation, Interpolation and Leakage pages train for the same data set and setting, so
# a sweep fills the store for them and they train only what is missing.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt

from nrf import page
from nrf.sections import constructed_training as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options constructed_training`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r = rec["results"]

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```
#
# {glue:text}`summary`

# %% tags=["remove-cell"]
page.glue_values(
    summary=(
        f"Data set {r['dataset']} ({r['size']:,} training images); learning rate {r['lr']:g}, batch size "
        f"{r['batch_size']}, decay {r['decay']}, {r['epochs']} epochs. Clean test accuracy: final "
        f"{100 * r['final_acc']:.1f}%, best epoch {100 * r['best_epoch_acc']:.1f}% (chance {100 * r['chance']:.1f}%, "
        f"{r['n_test']:,} test images)."
    )
)

fig, ax = plt.subplots(figsize=(5, 3))
for split in ("train", "test"):
    curve = r["history"][f"{split}_acc"]
    ax.plot(range(1, len(curve) + 1), [100 * a for a in curve], label=split)
ax.axhline(100 * r["chance"], color="gray", ls="--", label="chance")
ax.set(
    xlabel="epoch",
    ylabel="accuracy (%)",
    title=f"{r['dataset']}, lr {r['lr']:g}, batch {r['batch_size']}, decay {r['decay']}",
)
ax.legend()
fig.tight_layout()
page.glue_values(fig_curve=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_curve
# :name: constructed-training-curve
#
# Training accuracy (on the constructed labels) and clean test accuracy (on the true labels)
# after every epoch.
# ```
