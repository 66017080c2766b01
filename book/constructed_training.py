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
# # One sweep point: training on a constructed data set
#
# Not a page of the book: the notebook that `nrf sweep constructed_training` runs once per
# point of a hyperparameter grid (Generalisation, Interpolation and Leakage sections). It trains
# a fresh ResNet-18 on one constructed data set with one setting and tests it on the clean test
# set; the result goes to the artifact store, where the sections read it back.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" or "paper"
dataset = "univ"  # a constructed data set: a name of nrf.sections.constructed.catalogue
lr = 0.1  # SGD learning rate
batch_size = 128  # batch size
decay = "none"  # "none" or "step" (one x0.1 drop half-way)
train_epochs = None  # training epochs; None: the profile's (400 for paper)
model_width = None  # width of the fresh ResNet-18; None: the profile's
construction = None  # the Constructed section's parameters (n_source, Ks, ...); None: its defaults
settings = None  # profile settings of the natural model that made the data ({"data": ..., "seed": ...}); None: its

# %%
import matplotlib.pyplot as plt

from nrf.sections import constructed_training as section

out = section.run(profile, dataset=dataset, lr=lr, batch_size=batch_size, decay=decay, train_epochs=train_epochs,
                  model_width=model_width, construction=construction, **(settings or {}))
print(f"{dataset}: {out['size']} training images, setting {out['setting']}")
print(f"clean test accuracy: final {100 * out['final_acc']:.1f}%, best epoch {100 * out['best_epoch_acc']:.1f}% "
      f"(chance {100 * out['chance']:.1f}%); computed on {', '.join(sorted(out['hardware']))}")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, len(out["history"]["test_acc"]) + 1), [100 * a for a in out["history"]["test_acc"]], label="test")
ax.plot(range(1, len(out["history"]["train_acc"]) + 1), [100 * a for a in out["history"]["train_acc"]], label="train")
ax.axhline(100 * out["chance"], color="gray", ls="--", label="chance")
ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{dataset}, lr {lr}, batch {batch_size}, decay {decay}")
ax.legend()
plt.show()
