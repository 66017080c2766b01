"""Constructed data sets: targets, base sets and the balanced cut (nrf.constructed)."""

import pytest
import torch

from nrf import constructed, models, options
from nrf.data import Data


def labels(per_class=30, classes=10):
    return torch.arange(classes).repeat_interleave(per_class)


def test_random_targets_are_balanced_and_independent():
    y = labels()
    t = constructed.assign_targets(y, 10, "random", seed=0)
    table = torch.zeros(10, 10, dtype=torch.long)
    table.index_put_((y, t), torch.ones(len(y), dtype=torch.long), accumulate=True)
    assert (table == 3).all()  # 30 images per class dealt over 10 targets
    assert torch.equal(t, constructed.assign_targets(y, 10, "random", seed=0))
    assert not torch.equal(t, constructed.assign_targets(y, 10, "random", seed=1))
    assert torch.equal(constructed.assign_targets(y, 10, "cyclic", seed=0), (y + 1) % 10)


@pytest.mark.parametrize("source", ["random", "class", "cyclic"])
def test_base_sets_share_target_and_cover_everything(source):
    y = labels()
    t = constructed.assign_targets(y, 10, source, seed=0)
    sets = constructed.base_sets(y, t, 4, source, seed=0)
    assert torch.equal(torch.cat(sets).sort().values, torch.arange(len(y)))
    for s in sets:
        assert len(t[s].unique()) == 1
        assert 2 <= len(s) <= 8  # about K
        if source != "random":
            assert len(y[s].unique()) == 1


def test_balanced_cut_is_exactly_uniform_and_independent():
    g = torch.Generator().manual_seed(0)
    y = labels(100)
    t = constructed.assign_targets(y, 10, "random", seed=0)
    fooled = (torch.rand(len(y), generator=g) < 0.7) | (t == y)  # the diagonal is always "fooled"
    table = constructed.cell_table(y, t, fooled, 10)
    plan = constructed.cut([table])
    assert (plan == table.amin(1, keepdim=True)).all()
    index = constructed.select(y, t, fooled, plan, seed=0)
    assert fooled[index].all()
    report = constructed.balance_report(y[index], t[index], 10)
    assert report["max_gap"] == 0 and torch.equal(report["table"], plan)
    # a common cut over two tables keeps, per cell, no more than either has
    other = constructed.cell_table(y, t, fooled & (torch.rand(len(y), generator=g) < 0.5), 10)
    both = constructed.cut([table, other])
    assert (both <= torch.minimum(table, other)).all() and both.sum() > 0


def test_unreachable_target_is_dropped_and_cyclic_cut_is_uniform():
    y = labels(50)
    t = constructed.assign_targets(y, 10, "random", seed=0)
    fooled = t != 4  # nothing ever reaches target 4
    plan = constructed.cut([constructed.cell_table(y, t, fooled, 10)])
    assert (plan[:, 4] == 0).all() and (plan[:, :4] == 5).all()
    index = constructed.select(y, t, fooled, plan, seed=0)
    assert constructed.balance_report(y[index], t[index], 10)["max_gap"] == 0  # uniform over the 9 labels left
    t = constructed.assign_targets(y, 10, "cyclic", seed=0)
    fooled = torch.arange(len(y)) % 50 < (y + 1) * 4  # class c reaches c + 1 for 4 (c + 1) images
    plan = constructed.cut([constructed.cell_table(y, t, fooled, 10)], cyclic=True)
    assert plan.sum(1).tolist() == [4] * 10 and (plan[torch.arange(10), (torch.arange(10) + 1) % 10] == 4).all()


def test_build_adv_and_univ():
    model = models.build("resnet18", width=4, seed=0)
    g = torch.Generator().manual_seed(0)
    data = Data(
        x=torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g),
        y=labels(4),
        classes=[str(c) for c in range(10)],
        identity="random",
    )
    for spec in (constructed.variant("adv", "l2", 1.0), constructed.variant("univ", "linf", 8 / 255, 4)):
        raw = constructed.build(model, data, spec, steps=2, step=0.5, seed=0)
        assert raw["x"].dtype == torch.float16 and raw["x"].shape == data.x.shape
        delta = raw["x"].float() - data.x.float() / 255
        if spec["norm"] == "l2":
            assert (delta.flatten(1).norm(dim=1) <= 1.0 + 0.02).all()
        else:  # images of one base set share the delta (up to clipping and float16 rounding)
            assert delta.abs().max() <= 8 / 255 + 1e-3
        assert raw["deltas"].shape == (10, 3, 32, 32)
        assert raw["fooled"].dtype == torch.bool and len(raw["fooled"]) == 40
    assert 2 <= raw["base_size"] <= 6  # a target's images split into sets of about K = 4


@pytest.mark.parametrize(
    "args, match",
    [
        (("rand", "l2", 1.0), "kind"),
        (("adv", "l3", 1.0), "norm"),
        (("adv", "l2", 0), "eps"),
        (("adv", "l2", 1.0, 4), "K"),
        (("univ", "l2", 1.0, 0), "K"),
        (("univ", "l2", 1.0, 4, "subclass"), "source"),
    ],
)
def test_variant_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        constructed.variant(*args)


def test_catalogue_names_every_variant_and_checks_its_options():
    cfg = options.resolve(
        constructed.OPTIONS, "smoke", {"Ks": [8, 1, 2], "K_univ": 8, "restrict_K": 2, "eps_scale": 2.0}
    )
    names = constructed.variants(cfg)
    assert list(names) == ["adv", "adv-half", "univ", "adv-linf", "univ-linf", "univ-K2", "univ-class", "univ-cyclic"]
    assert names["adv"]["eps"] == 2.0 and names["adv-half"]["eps"] == 1.0 and names["univ"]["K"] == 8
    assert names["univ-linf"]["eps"] == pytest.approx(16 / 255) and names["univ-class"]["source"] == "class"
    assert [constructed.k_name(k, 8) for k in (1, 2, 8)] == ["adv", "univ-K2", "univ"]
    with pytest.raises(ValueError, match="option restrict_K"):
        constructed.variants({**cfg, "restrict_K": 4})
    with pytest.raises(ValueError, match="option Ks"):
        constructed.variants({**cfg, "Ks": [1, 2, 2]})


def test_budget_note_names_the_scale():
    assert "3 times" in constructed.budget_note(3.0)
    assert "at the threat model's budget" in constructed.budget_note(1.0)
