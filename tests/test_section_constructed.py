"""Section "Constructed data sets": the catalogue, the cut of each group, one variant for training."""

import pytest
import torch
from conftest import TINY as MODELS_TINY

from nrf import attacks, records, zoo
from nrf import constructed as core
from nrf.sections import constructed

# Few images, a budget large enough that a 1-epoch network is fooled almost everywhere (so the
# balanced cut keeps something), two solver steps. The other constructed-data tests build on it.
TINY = {
    **MODELS_TINY,
    "n_source": 1000,
    "Ks": [1, 2, 8],
    "K_univ": 8,
    "restrict_K": 2,
    "eps_scale": 8.0,
    "solver_epochs": 2,
    "solver_step": 0.5,
}


def test_record_and_catalogue(tiny, forbid):
    rec = records.get(constructed, TINY)
    r, t = rec["results"], rec["tensors"]
    v = r["variants"]
    assert set(v) == {
        "adv",
        "adv-half",
        "univ",
        "adv-linf",
        "univ-linf",
        "univ-K2",
        "univ-class",
        "univ-cyclic",
        "univ-budget",
    }
    assert v["univ"]["K"] == 8 and v["adv-half"]["eps"] == v["adv"]["eps"] / 2 == 4.0
    assert v["univ-budget"]["eps"] == 1.0 and r["budget"] == "univ-budget" and r["draws"] == 2
    assert set(r["common"]) == {"l2", "linf", "univ-cyclic", "univ-budget"}
    kept = sum(map(sum, r["common"]["l2"]))
    assert kept > 0, "the tiny settings should keep something"
    for name, s in v.items():
        assert s["built"] == 1000 and 0 <= s["fooled_first"] <= s["fooled"] <= 1 and len(s["fooled_by_target"]) == 10
        assert s["group"] in r["common"] and s["kept"] == sum(map(sum, r["common"][s["group"]]))
        if name != "univ-cyclic":  # uniform labels, independent of the classes
            assert s["max_gap"] == 0 and s["chi2"] == 0 and s["p_value"] > 0.99
    assert v["univ"]["kept"] == v["adv"]["kept"] == kept  # the l2 variants share one cut
    assert len(v["univ"]["solver_curve"]) == 2 and len(v["adv"]["solver_curve"]) == 10
    assert v["univ-cyclic"]["max_gap"] is None and v["univ-cyclic"]["p_value"] is None
    for name in constructed.EXAMPLES:
        assert t[f"original_{name}"].dtype == torch.uint8 and t[f"original_{name}"].shape[1:] == (3, 32, 32)
        assert t[f"perturbed_{name}"].shape == t[f"original_{name}"].shape
        assert len(r["examples"]["labels"][name]) == len(t[f"original_{name}"])
    assert r["classes"][0] == "airplane" and r["n_source"] == 1000
    assert [v.status for v in constructed.verdicts(rec)] == ["holds", "holds"]

    # a second catalogue loads everything; one variant as a training set
    forbid(core, "build", "recomputed a stored variant")
    cat = core.Catalogue(records.resolve(constructed, TINY)).build()
    data = cat.dataset("univ-K2")
    assert len(data) == cat.size("univ-K2") == kept and data.x.dtype == torch.float16
    assert data.identity == cat.identity("univ-K2") and (data.x >= 0).all() and (data.x <= 1).all()
    assert torch.equal(attacks.predict(cat.model, data.x), data.y)  # kept: the model sends them to their labels
    cyclic = cat.dataset("univ-cyclic")
    assert torch.equal(cyclic.y, (cyclic.fine_y + 1) % 10)
    forbid(core, "Catalogue", "computed the record again")
    assert records.get(constructed, TINY)["results"] == r


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"Ks": []}, "option Ks"),
        ({"Ks": [1, 0]}, "option Ks"),
        ({"Ks": [1, 2, 2]}, "option Ks"),
        ({"restrict_K": 3}, "option restrict_K"),
        ({"K_univ": 0}, "option K_univ"),
        ({"eps_scale": -1}, "option eps_scale"),
        ({"n_source": 0}, "option n_source"),
        ({"n_source": 10**6}, "option n_source"),
        ({"solver_epochs": 0}, "option solver_epochs"),
        ({"solver": {"steps": 2}}, "unknown option 'solver'"),
    ],
)
def test_bad_options_fail_before_training(tiny, forbid, bad, match):
    forbid(zoo, "trained", "trained or loaded a model before checking the options")
    with pytest.raises(ValueError, match=match):
        records.get(constructed, {**TINY, **bad})


def test_unknown_dataset_is_rejected(tiny, forbid):
    forbid(zoo, "trained", "trained")
    with pytest.raises(ValueError, match="option dataset"):
        core.Catalogue(records.resolve(constructed, TINY)).check("univ-K3")


def record(gaps=(0.0, 0.0), kept=(40, 40), cyclic_kept=30, p_values=(1.0, 1.0), linf_kept=50):
    """A hand-made record: two balanced l2 variants, a linf one (another group: its own size)
    and the cyclic one."""
    labels = [4] * 10 if kept[0] else [0] * 10
    variants = {
        name: {"max_gap": g, "kept": k, "label_counts": labels, "p_value": p, "group": "l2"}
        for name, g, k, p in zip(("adv", "univ"), gaps, kept, p_values)
    }
    variants["univ-linf"] = {"max_gap": 0.0, "kept": linf_kept, "label_counts": labels, "p_value": 1.0, "group": "linf"}
    variants["univ-cyclic"] = {
        "max_gap": None,
        "kept": cyclic_kept,
        "label_counts": labels,
        "p_value": None,
        "group": "univ-cyclic",
    }
    return {"results": {"variants": variants}}


@pytest.mark.parametrize(
    "rec, statuses",
    [
        (record(), ["holds", "holds"]),
        (record(gaps=(0.0, 0.03)), ["does not hold", "holds"]),
        (record(p_values=(1.0, 0.01)), ["does not hold", "holds"]),
        (record(kept=(40, 30)), ["holds", "does not hold"]),
        (record(kept=(0, 0), cyclic_kept=0), ["cannot be tested", "cannot be tested"]),
    ],
)
def test_verdicts(rec, statuses):
    assert [v.status for v in constructed.verdicts(rec)] == statuses
