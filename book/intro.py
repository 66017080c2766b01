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
# # Universal perturbations and non-robust features, reproduced
#
# This book is an executable reproduction of two papers:
#
# - **Part I**: *Non-robust features through the lens of universal perturbations* (Park, Wei,
#   Xiao, Li, Madry; ICLR 2021 submission, later arXiv 2112.15329 *On distinctive properties of
#   universal perturbations*). Universal perturbations look more human-aligned than standard
#   adversarial perturbations, rely on non-robust features, and carry less non-robust signal.
# - **Part II**: *Universal adversarial perturbations* (Moosavi-Dezfooli, Fawzi, Fawzi,
#   Frossard; CVPR 2017), the paper that introduced them.
#
# Every page is a notebook (`book/*.py`, jupytext percent format) that renders one **result
# record**: the numbers, curves and small tensors that a section of the `nrf` package computed,
# with their provenance. Records of the profiles that take hours are committed under `results/`,
# so the book renders on a fresh clone without data or training; any record can be recomputed
# by one command (`nrf compute SECTION -p profile PROFILE`). Figures and tables are captioned
# with their ids from the reproduction spec (I-T7, I-F4, II-T2, ...). Every number is computed
# by the code in this repository, and every verdict is a function of the record
# (`verdicts()` in the section's module, thresholds in `nrf.claims`).
#
# ## Claims at a glance
#
# Each row is one claim of the papers as a page of this book tests it: the measured effect
# with one standard error, and the verdict under the page's criterion (an effect counts when
# it exceeds two standard errors). "Cannot be tested" means the run has no signal to test
# the claim with (for example, a model at chance), not that the claim fails.

# %% tags=["remove-cell"]
from IPython.display import HTML, Markdown, display

from nrf import page

page.begin()

# %% tags=["parameters"]
profile = None  # None: the profile each page shows (medium where committed, else smoke); or smoke, medium, paper

# %% tags=["remove-input"]
claims, runs = page.glance(profile)
HTML(claims.to_html(index=False, escape=False, justify="left"))

# %% [markdown]
# ## Where the numbers come from
#
# One row per page: the profile, the hardware that computed its artifacts (trained models,
# perturbations, metrics), the commits of the code that computed them, the seconds of compute
# they took, and whether the record was read from the committed `results/` or from the local
# artifact store.

# %% tags=["remove-input"]
HTML(runs.to_html(index=False, escape=False, justify="left"))

# %% [markdown]
# The last `nrf reproduce` of this profile, stage by stage (a stage whose committed record was
# already current is marked committed and costs nothing):

# %% tags=["remove-input"]
shown = profile or "medium"
table = page.stages(shown)
if table is None:
    display(Markdown(f"No `nrf reproduce {shown}` run is recorded in `results/{shown}/`."))
else:
    display(Markdown(f"On {table.attrs['hardware']}, commit `{table.attrs['commit']}`, finished "
                     f"{table.attrs['finished']}; {table['seconds'].sum():,.0f} s in all."))
    display(HTML(table.to_html(index=False, na_rep="")))

# %% [markdown]
# ## Profiles
#
# - **smoke**: a small, class-balanced sample of real CIFAR-10 shipped in the repository
#   (5,000 training and 1,000 test images), narrow models and few epochs. It computes on two
#   CPU cores in about twenty minutes; CI computes it from scratch on every change. Its numbers
#   show that the code runs and which way the effects point, not the papers' effect sizes.
# - **medium**: full CIFAR-10 (50,000 training and 10,000 test images), the paper's
#   architectures at a quarter of their width (ResNet-18 and VGG at base width 16) trained on a
#   one-cycle schedule for 15 epochs (the robust model 12), and sizes (images, perturbations,
#   seeds) chosen so that each claim's effect can be told from its spread. `nrf reproduce medium`
#   computes it on two CPU cores in hours; its records and trained models are committed, and
#   they are what this book shows where they exist (`nrf.zoo.load("medium", "natural")` gives a
#   trained model without data or training).
# - **paper**: the paper's settings on full CIFAR-10, for a GPU.
#
# Each page states which profile, data, hardware and commit produced it, and which of its
# options differ from the profile's defaults (`nrf options SECTION` lists them all).
#
# ## Running it
#
# See the repository's README: `make book` builds this book from the committed records,
# `make test` runs the tests, `nrf run SECTION -p NAME VALUE` renders one section with other
# options, `nrf compute SECTION` computes a record without Jupyter, and `nrf sweep` runs a grid.
