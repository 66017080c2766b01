import pytest

from nrf import claims


def test_statistics():
    assert claims.binomial_se(0.5, 100) == pytest.approx(0.05)
    assert claims.diff_se(0.03, 0.04) == pytest.approx(0.05)
    assert claims.mean_se([1, 2, 3]) == pytest.approx((2.0, (1 / 3) ** 0.5))
    assert claims.mean_se([4]) == (4.0, 0.0)
    mean, se = claims.mean_rate([0.5, 0.5], 100)
    assert mean == 0.5 and se == pytest.approx(0.05 / 2**0.5)
    assert claims.exceeds(5, 2) and not claims.exceeds(4, 2) and not claims.exceeds(6, 2, margin=2)
    assert [claims.outcome(k, 3) for k in (3, 1, 0)] == ["holds", "holds in part", "does not hold"]


def test_verdict():
    v = claims.Verdict("c", "I-F2", 12.345, 1.44, "points", "holds", "more than 2 s.e.")
    assert v.effect_text() == "+12.3 ± 1.4 points" and v.row()["test"] == "I-F2"
    assert claims.Verdict("c", "I-F18", None, None, "", "not applicable", "-").effect_text() == "-"
    with pytest.raises(ValueError, match="status must be one of"):
        claims.Verdict("c", "I-F2", 1, 1, "points", "maybe", "-")


def test_sanity_checks_are_apart():
    assert claims.Verdict("c", "-", None, None, "", "holds", "-", kind="sanity check").kind == "sanity check"
    with pytest.raises(ValueError, match="kind must be one of"):
        claims.Verdict("c", "-", None, None, "", "holds", "-", kind="claims")


def test_one_sided_and_equivalence_tests_state_their_margin():
    assert claims.above(5, 2).passed and not claims.above(-5, 2).passed  # one-sided: a reversed effect fails
    assert not claims.above(14, 2, 10).passed
    assert "exceeds 10 points by more than 2 s.e." in claims.above(14, 2, 10).criterion
    assert claims.below(1, 1, 5).passed and not claims.below(4, 1, 5).passed  # "no large effect" must be shown
    assert "stays below 5 points" in claims.below(1, 1, 5).criterion
    assert claims.within(-1, 1, 5).passed and not claims.within(-4, 1, 5).passed and not claims.within(0, 3, 5).passed
    assert claims.quoted("it works", "x > 0") == 'the paper: "it works"; tested as: x > 0'


def test_paired_statistics():
    d, se = claims.mcnemar(30, 10, 100)  # a hits 30 images b misses, b 10 that a misses
    assert d == pytest.approx(0.2) and se == pytest.approx((40 - 100 * 0.04) ** 0.5 / 100)
    assert claims.mcnemar(0, 0, 100) == (0.0, 0.0)
    q, df = claims.cochran_q([[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    assert df == 2 and q == pytest.approx(2 * (3 * (16 + 4 + 1) - 49) / (3 * 7 - (1 + 4 + 1 + 9)))
    assert claims.cochran_q([[1, 1], [0, 0]]) == (0.0, 1)


def test_fixed_point_and_signal():
    points = [{"dataset": "adv", "lr": 0.05, "final_acc": 0.3}, {"dataset": "adv", "lr": 0.1, "final_acc": 0.6}]
    assert claims.fixed(points, "adv")["lr"] == 0.05  # the grid's first setting, not the best on the test set
    with pytest.raises(KeyError, match="'univ'"):
        claims.fixed(points, "univ")
    assert claims.signal(0.2, 0.1) and not claims.signal(0.19, 0.1)
