"""bench/paper_flops.py counts every stage of the paper profile, consistently with the options."""

import importlib.util

import pytest

from nrf import contents, options, records, store, zoo

spec = importlib.util.spec_from_file_location("paper_flops", store.REPO / "bench" / "paper_flops.py")
paper_flops = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper_flops)


@pytest.fixture(scope="module")
def paper():
    return {r["stage"]: r for r in paper_flops.count("paper")}


def test_every_stage_and_role_has_a_row(paper):
    roles = [f"models: {role}" for role in zoo.ROLES]
    assert list(paper) == roles + list(contents.PAGES)
    assert paper["models"]["flops"] == 0  # the record only: every model and its robust accuracy are in its role's row
    assert all(r["passes"] > 0 and r["flops"] > 0 for stage, r in paper.items() if stage != "models")


def test_robust_model_costs_its_attack_steps_more(paper):
    """Same epochs and evaluations as the natural model, plus adv_steps input-gradient steps per
    training image and epoch: about (adv_steps * 2 + 3) / 3 times its cost."""
    cfg = records.resolve(contents.PAGES["models"], {"profile": "paper"})
    cost = paper_flops.per_image("resnet18", cfg["width"])
    natural, robust = paper["models: natural"]["flops"], paper["models: robust"]["flops"]
    assert cfg["robust_epochs"] == cfg["epochs"]
    assert robust - natural == pytest.approx(cfg["epochs"] * 50_000 * cfg["adv_steps"] * cost["gradient"])
    ratio = (cost["training"] + cfg["adv_steps"] * cost["gradient"]) / cost["training"]
    assert robust / natural == pytest.approx(ratio, rel=0.1)  # the test evaluations are alike
    assert paper["models: natural_seed1"]["flops"] == natural
    assert paper["models: vgg11"]["flops"] < paper["models: vgg16"]["flops"] < natural


def test_constructed_training_matches_grid_docs(paper):
    """nrf/grid.py: the paper profile's one point trains the twelve data sets for about 0.2 EFLOP,
    the full grid (grids/paper-full.yaml) for about 10.7."""
    pages = ("generalisation", "interpolation", "leakage")
    assert 0.15e18 < sum(paper[p]["flops"] for p in pages) < 0.25e18
    grid = options.options_file(store.REPO / "grids" / "paper-full.yaml")
    full = {r["stage"]: r for r in paper_flops.count("paper", grid)}
    assert 9e18 < sum(full[p]["flops"] for p in pages) < 12e18


def test_markdown_on_smoke():
    text = paper_flops.markdown(paper_flops.count("smoke"))
    assert text.startswith("| stage |") and "| **total** |" in text and "over 8 minutes at 300 TFLOP/s" in text
