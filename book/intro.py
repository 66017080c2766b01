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
# (intro)=
# # Universal perturbations and non-robust features, reproduced
#
# This book is an executable reproduction of two papers:
#
# - **Part I**: *Non-robust features through the lens of universal perturbations* (Park, Wei,
#   Xiao, Li, Madry; ICLR 2021 submission, later *On distinctive properties of universal
#   perturbations*, {cite}`park2021distinctive`). Universal perturbations look more
#   human-aligned than standard adversarial perturbations, rely on non-robust features, and
#   carry less non-robust signal.
# - **Part II**: *Universal adversarial perturbations* (Moosavi-Dezfooli, Fawzi, Fawzi,
#   Frossard; CVPR 2017, {cite}`moosavi2017universal`), the paper that introduced them.
#
# Every page is a notebook (`book/*.py`, jupytext percent format) that renders one **result
# record**: the numbers, curves and small tensors that a section of the `nrf` package computed,
# with their provenance. Records of the profiles that take hours are committed under `results/`,
# so the book renders on a fresh clone without data or training; each page gives the one command
# that recomputes it. Every number is computed by the code in this repository, and every verdict
# is a function of the record (`verdicts()` in the section's module, statistics in `nrf.claims`).
# {ref}`reproduced` says what is reproduced, figure by figure, with the papers' ids (I-T7, I-F4,
# II-T2, ...) that caption the book's figures and tables; {ref}`reading` says how to read a page
# (profiles, the data, verdicts).

# %% tags=["remove-cell"]
from IPython.display import HTML, Markdown, display

from nrf import options, page
from nrf.sections import models

page.begin(globals())

# %% tags=["parameters", "hide-input"]
profile = None  # None: the profile each page shows (medium where committed, else smoke); or smoke, medium, paper

# %% tags=["remove-cell"]
claims, runs = page.glance(profile)
ours = {p: options.resolve(models.OPTIONS, p) for p in sorted(set(runs["profile"]))}
paper = options.resolve(models.OPTIONS, "paper")
page.glue_values(
    scope_models="; ".join(
        f"at the {p} profile, ResNet-18s of base width {o['width']} (the paper's: {paper['width']}) for {o['epochs']} "
        f"epochs (the paper's CIFAR-10 models: {paper['epochs']})"
        for p, o in ours.items()
    )
)

# %% [markdown]
# ## Scope: what this book can and cannot show
#
# Most of Part I's headline results are on **ImageNet-M10** (ten super-classes of ImageNet,
# 224 x 224 pixels); Part II's are on ImageNet at 224 px. This book runs everything on
# **CIFAR-10** (32 x 32 pixels), the setting of Part I's appendix, which repeats several of its
# results there. The pages shown here train, {glue:text}`scope_models`, and use fewer images,
# perturbations and grid points than the papers.
#
# What that can show: whether each effect the papers describe is present, in which direction,
# and whether it stands out from its own spread, on models of near-usual accuracy. What it
# cannot show: the papers' effect sizes on ImageNet-M10 (a 32 px image has far less room for a
# "semantic" pattern than a 224 px one), claims that need ImageNet-M10's fine labels (subclass
# base sets and targets), or what full-width models trained to convergence would do. The papers'
# numbers are shown beside the book's for orientation, labelled as theirs; they are mostly on
# another data set, so a difference in size is expected and is not a failed replication.
#
# ## Replication summary
#
# One row per claim of the papers, in the order of the book. **replication** follows from the
# page's verdict by one rule: *holds* is "replicates", *holds in part* (some of its checks pass)
# is "direction only", *does not hold* is "does not replicate", and *cannot be tested* or *not
# applicable* is "cannot be tested at this scale". **why** is the verdict's reason;
# **the paper reports** is the papers' own number for the same figure or table.

# %% tags=["remove-input"]
papers = claims[claims["kind"] == "claim"]
summary = papers[["claim", "tested by", "replication", "effect (± s.e.)", "the paper reports", "why", "page"]]
HTML(summary.to_html(index=False, escape=False, justify="left"))

# %% tags=["remove-input"]
counts = papers["replication"].value_counts()
display(Markdown("In all: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + f" (of {len(papers)} claims)."))

# %% [markdown]
# ## The book's own sanity checks
#
# These test the book's apparatus, not the papers: that a constructed data set's labels are
# uniform, that the solver's step is well chosen, that the robust model is robust. A failed one
# weakens the claims that rest on it.

# %% tags=["remove-input"]
checks = claims[claims["kind"] == "sanity check"]
display(
    HTML(
        checks[["claim", "tested by", "effect (± s.e.)", "verdict", "why", "page"]].to_html(
            index=False, escape=False, justify="left"
        )
    )
    if len(checks)
    else Markdown("No verdict is a sanity check.")
)

# %% [markdown]
# ## Claims at a glance
#
# Every verdict of every page, with the measured effect (± one standard error), the verdict
# under the page's criterion (an effect counts when it exceeds two standard errors,
# {ref}`reading-verdicts`) and what the paper reports. "Cannot be tested" means the run has no
# signal to test the claim with (for example, a model at chance), not that the claim fails.

# %% tags=["remove-input"]
HTML(
    claims[["claim", "tested by", "effect (± s.e.)", "verdict", "the paper reports", "page"]].to_html(
        index=False, escape=False, justify="left"
    )
)

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
    display(
        Markdown(
            f"On {table.attrs['hardware']}, commit `{table.attrs['commit']}`, finished "
            f"{table.attrs['finished']}; {table['seconds'].sum():,.0f} s in all."
        )
    )
    display(HTML(table.to_html(index=False, na_rep="")))

# %% [markdown]
# Profiles, the data and the verdicts' criteria are described once, in {ref}`reading`.
#
# ## Running it
#
# See the repository's README: `make book` builds this book from the committed records,
# `make test` runs the tests, `nrf run SECTION -p NAME VALUE` renders one section with other
# options, `nrf compute SECTION` computes a record without Jupyter, and `nrf sweep` runs a grid.
