"""Constructed data sets: targets, base sets, further draws and the balanced cut (nrf.constructed)."""

import pytest
import torch

from nrf import attacks, constructed, models, options
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
    assert list(names) == [
        "adv",
        "adv-half",
        "univ",
        "adv-linf",
        "univ-linf",
        "univ-K2",
        "univ-class",
        "univ-cyclic",
        "univ-budget",
    ]
    assert names["univ-budget"] == constructed.variant("univ", "l2", 1.0, 8)  # the unscaled budget, only reported
    assert constructed.BUDGET not in constructed.variants({**cfg, "eps_scale": 1.0})
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


def test_independence_test_accepts_the_cut_and_rejects_dependent_labels():
    y = labels(100)
    t = constructed.assign_targets(y, 10, "random", seed=0)
    report = constructed.balance_report(y, t, 10)
    assert report["chi2"] == 0 and report["df"] == 81 and report["p_value"] > 0.99
    leaky = torch.where(torch.arange(len(y)) % 3 == 0, y, t)  # a third of the labels copy the class
    report = constructed.balance_report(y, leaky, 10)
    assert report["chi2"] > 500 and report["p_value"] < 1e-6


def test_retarget_sends_the_misses_to_their_class_s_shortest_cells():
    y = labels(100)
    t = constructed.assign_targets(y, 10, "random", seed=0)
    fooled = ~((y == 0) & (t == 3)) & (torch.arange(len(y)) % 4 != 0)  # cell (0, 3) is never reached
    tried = constructed.cell_table(y, t, torch.ones_like(fooled), 10)
    new = constructed.retarget(y, t, fooled, tried, seed=0)
    assert torch.equal(new[fooled], t[fooled])  # only the misses move
    miss = ~fooled
    assert (new[miss] != t[miss]).all()  # never back to the target an image failed
    moved = miss & (y == 0) & (t != 3)
    assert (new[moved] == 3).float().mean() > 0.5  # class 0's misses fill its empty cell first
    assert torch.equal(new, constructed.retarget(y, t, fooled, tried, seed=0))


def fake_attack(monkeypatch, hard=0.1):
    """A stand-in for the solver and the model: the image with index i (coded in its pixels) is
    sent to target t when a hash of (i, t) falls below the cell's rate, 0.6 everywhere but cell
    (0, 3) (`hard`). The perturbation codes the target, so the "model" can read it back."""

    def perturb(model, x, y, t, spec, *, steps, step, seed):
        delta = torch.zeros(x.shape)
        delta[:, 0, 0, 0] = (t.float() + 1) / 16
        return delta, [1], torch.zeros(steps)

    def predict(model, x):
        x = x.float()
        t = (x[:, 0, 0, 0] * 16).round().long() - 1
        i = (x[:, 1, 0, 0] * 255).round().long() + 256 * (x[:, 2, 0, 0] * 255).round().long()
        y = i // 100
        rate = torch.where((y == 0) & (t == 3), hard, 0.6)
        return torch.where(((i * 7919 + t * 104729) % 1000).float() / 1000 < rate, t, (t + 1) % 10)

    monkeypatch.setattr(constructed, "_perturb", perturb)
    monkeypatch.setattr(attacks, "predict", predict)


def test_further_draws_keep_more_with_labels_still_independent(monkeypatch):
    """The hardest (class, target) cell bounds what one draw keeps; more draws fill it."""
    fake_attack(monkeypatch)
    i = torch.arange(1000)
    x = torch.zeros(1000, 3, 32, 32, dtype=torch.uint8)
    x[:, 1, 0, 0], x[:, 2, 0, 0] = i % 256, i // 256
    data = Data(x=x, y=i // 100, classes=[str(c) for c in range(10)], identity="coded")
    spec = constructed.variant("univ", "l2", 1.0, 4)
    kept, first = {}, {}
    for draws in (1, 3):
        raw = constructed.build(None, data, spec, steps=1, step=0.5, draws=draws, seed=0)
        assert torch.equal(raw["fooled"], attacks.predict(None, raw["x"]) == raw["t"])
        table = constructed.cell_table(data.y, raw["t"], raw["fooled"], 10)
        plan = constructed.cut([table])
        index = constructed.select(data.y, raw["t"], raw["fooled"], plan, seed=0)
        report = constructed.balance_report(data.y[index], raw["t"][index], 10)
        assert report["max_gap"] == 0 and report["p_value"] > 0.99
        kept[draws], first[draws] = len(index), raw["fooled_first"]
        assert raw["fooled"].float().mean() >= raw["fooled_first"]
    assert first[1] == first[3] and kept[3] >= 2 * kept[1]


def test_groups_are_cut_apart():
    """The l2 variants share one cut, the linf pair another: a hard l2 cell no longer shrinks linf."""
    y = labels(100)
    t = constructed.assign_targets(y, 10, "random", seed=0)
    easy = constructed.cell_table(y, t, torch.ones(len(y), dtype=torch.bool), 10)
    hard = easy.clone()
    hard[0, 3] = 2
    names = {
        "adv": constructed.variant("adv", "l2", 1.0),
        "univ": constructed.variant("univ", "l2", 1.0, 8),
        "adv-linf": constructed.variant("adv", "linf", 0.03),
        "univ-linf": constructed.variant("univ", "linf", 0.03, 8),
    }
    plans = constructed.cuts({"adv": easy, "univ": hard, "adv-linf": easy, "univ-linf": easy}, names)
    assert torch.equal(plans["adv"], plans["univ"]) and plans["univ"][0].tolist() == [2] * 10
    assert torch.equal(plans["adv-linf"], easy) and plans["adv-linf"].sum() > plans["adv"].sum()
