"""Verdicts: each claim of the two papers decided from a section's record, in one place.

A section module's `verdicts(record)` returns one `Verdict` per claim its page tests: the
measured effect, its standard error, the criterion and the outcome. The statistics they share
live here, so every claim is judged the same way: an effect counts when it exceeds K_SE
standard errors; a claim that needs a signal which the run does not have (a model at chance)
"cannot be tested" rather than failing.
"""

from dataclasses import asdict, dataclass

K_SE = 2  # an effect is real when it is more than K_SE standard errors from zero
STATUSES = ("holds", "holds in part", "does not hold", "cannot be tested", "not applicable")


@dataclass(frozen=True)
class Verdict:
    """One claim, decided. effect and spread are in `unit` (spread: one standard error)."""

    claim: str  # the claim, in a few words
    test: str  # the figure or table ids that test it (PAPER.md), e.g. "I-F2"
    effect: float | None
    spread: float | None
    unit: str
    status: str
    criterion: str  # what had to be true, in one sentence
    detail: str = ""  # why it came out this way, in one sentence

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def row(self) -> dict:
        return asdict(self)

    def effect_text(self) -> str:
        """'+12.3 ± 1.4 points' (three significant digits, two for the spread), or '-'."""
        if self.effect is None:
            return "-"
        spread = "" if self.spread is None else f" ± {self.spread:.2g}"
        return f"{self.effect:+.3g}{spread} {self.unit}".strip()


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion p measured on n independent trials."""
    return (max(p * (1 - p), 0.0) / max(n, 1)) ** 0.5


def diff_se(*ses: float) -> float:
    """Standard error of a sum or difference of independent estimates."""
    return sum(s * s for s in ses) ** 0.5


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of a list of numbers (s.e. 0 for one value)."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, (var / n) ** 0.5


def mean_rate(rates, n: int) -> tuple[float, float]:
    """(mean, standard error) of rates each measured on n independent trials (e.g. per-target ASRs
    on the same n test images, treated as independent)."""
    rates = [float(p) for p in rates]
    return sum(rates) / len(rates), diff_se(*[binomial_se(p, n) for p in rates]) / len(rates)


def exceeds(effect: float, spread: float, margin: float = 0.0) -> bool:
    """Is effect larger than margin by more than K_SE standard errors?"""
    return effect - margin > K_SE * spread


def outcome(passed: int, total: int) -> str:
    """holds / holds in part / does not hold, from how many of `total` checks passed."""
    return "holds" if passed == total else "holds in part" if passed else "does not hold"
