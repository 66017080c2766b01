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
# (models)=
# # Models
#
# Every later section attacks or probes the same few trained models. This section trains them
# (or loads them from the artifact store) and reports their clean and robust test accuracy:
# table I-T7 of the spec.
#
# - **natural**: CIFAR ResNet-18 {cite}`he2016resnet`, natural training (SGD, momentum 0.9,
#   weight decay 5e-4, random crop with 4 px padding and horizontal flip), with the learning-rate
#   schedule {glue:text}`schedule`.
# - **natural_seed1**: the same with another seed, for transfer and scaling checks.
# - **robust**: the same recipe with PGD adversarial training {cite}`madry2018towards` (l2, 3
#   steps of 2/3 eps), the recipe of the robustness library {cite}`robustness2019`.
# - **vgg16**, **vgg11**: VGG16-BN and VGG11-BN {cite}`simonyan2015vgg`, for transfer, leakage
#   and one gallery.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import pandas as pd

from nrf import page, reported, train
from nrf.sections import models as section

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = page.default_profile(section)  # smoke, medium or paper; every option: `nrf options models`

# %% tags=["remove-cell"]
rec = page.record(section, globals())
r, o = rec["results"], rec["options"]
models, attack = r["models"], r["attack"]
page.glue_values(
    schedule=(
        f"one-cycle: a linear climb to lr {o['lr']:g} over the first {100 * train.WARMUP:.0f}% of the steps, "
        "then linear to zero"
        if o["schedule"] == "onecycle"
        else f"lr {o['lr']:g}, x0.1 at epochs {', '.join(map(str, o['milestones'])) or '(none)'}"
    ),
    attack=f"untargeted PGD, {attack['norm']} eps = {page.eps_text(attack['eps'])}, {attack['steps']} steps of "
    f"{attack['step_size']:.3g}, no random start",
)

# %% [markdown]
# ```{glue:md} provenance
# :format: myst
# ```


# %% tags=["remove-input"]
def training(m):
    adv = m["adv"]
    return "natural" if adv is None else f"PGD {adv['norm']} eps={page.eps_text(adv['eps'])}, {adv['steps']} steps"


table = pd.DataFrame(
    [
        {
            "model": role,
            "architecture": f"{m['arch']} (width {m['width']})",
            "seed": m["seed"],
            "training": training(m),
            "epochs": m["epochs"],
            "clean acc. (%)": 100 * m["clean_acc"],
            f"robust acc. (%, {attack['norm']} eps={page.eps_text(attack['eps'])})": 100 * m["robust_acc"],
            "train time (s)": m["train_seconds"],
        }
        for role, m in models.items()
    ]
).set_index("model")
page.glue_values(**{"table_I-T7": table.style.format(precision=1)})

# %% [markdown]
# ```{glue:table} table_I-T7
# :name: I-T7
#
# **I-T7 Models.** Clean and robust test accuracy of every trained model (robust:
# {glue:text}`attack`, on the whole test split of the data named above).
# ```

# %% tags=["remove-input"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for role, m in models.items():
    curve = m["test_acc_curve"]
    ax.plot(range(1, len(curve) + 1), [100 * a for a in curve], label=role)
ax.set(xlabel="epoch", ylabel="clean test accuracy (%)", title=f"Training curves (profile {rec['options']['profile']})")
ax.legend()
fig.tight_layout()
page.glue_values(fig_curves=fig)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_curves
# :name: models-curves
#
# Clean test accuracy after each epoch of training, for every model of I-T7.
# ```
#
# ## Verdict
#
# The later sections use the adversarially trained model as the robust reference; that only
# works if it resists the attack that breaks the natural model.

# %% tags=["remove-input"]
from IPython.display import Markdown  # noqa: E402

Markdown(reported.beside("I-T7", rec))

# %% tags=["remove-input"]
found = page.verdicts(section, rec)
