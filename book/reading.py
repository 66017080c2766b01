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
# (reading)=
# # How to read this book
#
# What every page shares is said once, here; each page keeps only what differs (its own settings,
# in the folded *Provenance* box under its title).

# %% tags=["remove-cell"]
from IPython.display import Markdown

from nrf import claims, page

page.glue_values(
    **{f"profile_{name}": Markdown(note) for name, note in page.PROFILE_NOTES.items()},
    jpeg=page.JPEG_CAVEAT,
    k_se=f"{claims.K_SE}",
)

# %% [markdown]
# (reading-profiles)=
# ## Profiles
#
# A **profile** is a set of defaults for every option of every section: how much data, how wide
# the models, how long the schedules. Each page says in its provenance box which profile produced
# its numbers and which options differ from the papers' settings.
#
# - {glue:md}`profile_smoke`
# - {glue:md}`profile_medium`
# - {glue:md}`profile_paper`
#
# A page shows the `medium` record where one is committed under `results/medium/`, else the
# `smoke` one; `NRF_PROFILE=smoke make book` picks one profile for every page.
#
# (reading-data)=
# ## The data, and the JPEG caveat
#
# Everything in this book runs on CIFAR-10 {cite}`krizhevsky2009cifar` (32 x 32 pixels, ten
# classes), the data set of the appendix of Part I {cite}`park2021distinctive`; most of Part I's
# headline results are on ImageNet-M10 (ten super-classes of ImageNet at 224 x 224 pixels),
# which this book can load but does not run. {glue:text}`jpeg`
#
# (reading-verdicts)=
# ## How to read a verdict
#
# Every page ends with a table of verdicts: one row per claim of the papers that the page tests.
#
# - **effect**: the measured quantity the claim is about (a difference of attack success rates,
#   of accuracies, ...), with one standard error after the ±.
# - **criterion**: what had to be true, in one sentence. An effect counts when it exceeds
#   {glue:text}`k_se` standard errors, so a verdict says the data *show* the effect, not merely
#   that its sign is right.
# - **verdict**: *holds*, *holds in part* (some of the checks it needs pass), *does not hold*,
#   *cannot be tested* (the run lacks the signal the claim needs, for example a model at
#   chance: not a failure of the claim) or *not applicable* (the setting cannot express it, for
#   example fine-grained labels on CIFAR-10).
# - **the paper reports**: the papers' own number or sentence for the same figure or table,
#   labelled as theirs, with their setting. It is shown for comparison only: no verdict is
#   computed from it, and the papers' numbers are mostly on ImageNet-M10, not CIFAR-10.
#
# The first page ({ref}`intro`) gathers every verdict and turns each into a replication
# category by a fixed rule.
#
# (reading-provenance)=
# ## Provenance, and recomputing a page
#
# Under each page's title a folded box names the profile, the options that differ from the
# profile's defaults and from the papers' settings, the data, the hardware, the commit of the code
# that computed each artifact and the seconds it took. Each page also gives the one command that
# recomputes it, with the options a reader most likely changes; `nrf options SECTION` lists them
# all. Every page can be downloaded as a notebook (the download button at the top of the page)
# and run with [papermill](https://papermill.readthedocs.io): its first code cell, folded on the
# page, is the parameters cell.
