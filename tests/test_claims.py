import pytest

from nrf import claims


def test_statistics():
    assert claims.binomial_se(0.5, 100) == pytest.approx(0.05)
    assert claims.diff_se(0.03, 0.04) == pytest.approx(0.05)
    assert claims.mean_se([1, 2, 3]) == pytest.approx((2.0, (1 / 3) ** 0.5))
    assert claims.mean_se([4]) == (4.0, 0.0)
    mean, se = claims.mean_rate([0.5, 0.5], 100)
    assert mean == 0.5 and se == pytest.approx(0.05 / 2 ** 0.5)
    assert claims.exceeds(5, 2) and not claims.exceeds(4, 2) and not claims.exceeds(6, 2, margin=2)
    assert [claims.outcome(k, 3) for k in (3, 1, 0)] == ["holds", "holds in part", "does not hold"]


def test_verdict():
    v = claims.Verdict("c", "I-F2", 12.345, 1.44, "points", "holds", "more than 2 s.e.")
    assert v.effect_text() == "+12.3 ± 1.4 points" and v.row()["test"] == "I-F2"
    assert claims.Verdict("c", "I-F18", None, None, "", "not applicable", "-").effect_text() == "-"
    with pytest.raises(ValueError, match="status must be one of"):
        claims.Verdict("c", "I-F2", 1, 1, "points", "maybe", "-")
