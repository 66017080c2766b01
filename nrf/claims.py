"""Verdicts: each claim of the two papers decided from a section's record, in one place.

A section module's `verdicts(record)` returns one `Verdict` per claim its page tests: the
measured effect, its standard error, the criterion and the outcome. The statistics they share
live here, so every claim is judged the same way. Each criterion quotes the paper's sentence it
tests (`quoted`) and states its test and margin in words written by the function that applies it:
`above` (one-sided, in the paper's direction: the effect exceeds a margin by more than K_SE
standard errors), `below` and `within` (equivalence bounds for claims of "no large effect" or
"similar": the data must rule a large effect out). A claim that needs a signal the run does not
have (a model less than SIGNAL points above chance) "cannot be tested" rather than failing. The
book's own checks of its apparatus are verdicts of kind "sanity check", listed apart from the
papers' claims. The papers' reported numbers (nrf.reported) never enter here.
"""

from dataclasses import asdict, dataclass

K_SE = 2  # an effect is real when it is more than K_SE standard errors from zero
STATUSES = ("holds", "holds in part", "does not hold", "cannot be tested", "not applicable")
# "claim": a claim of the papers; "sanity check": the book's own check that its apparatus works
# (listed apart from the papers' claims).
KINDS = ("claim", "sanity check")
SIGNAL = 10.0  # points above chance a model's accuracy needs before a claim about what it learnt is decided


@dataclass(frozen=True)
class Verdict:
    """One claim, decided. effect and spread are in `unit` (spread: one standard error)."""

    claim: str  # the claim, in a few words
    test: str  # the figure or table ids that test it (PAPER.md), e.g. "I-F2"
    effect: float | None
    spread: float | None
    unit: str
    status: str
    criterion: str  # what had to be true, in one sentence: the paper's sentence quoted, and the test with its margin
    detail: str = ""  # why it came out this way, in one sentence
    kind: str = "claim"  # one of KINDS

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

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


@dataclass(frozen=True)
class Test:
    """One statistical test applied: did it pass, and the criterion it applied, in words (so the
    text a page shows is written by the code that decides)."""

    passed: bool
    criterion: str


def above(effect: float, spread: float, margin: float = 0.0, what: str = "the effect", unit: str = "points") -> Test:
    """One-sided, in the claim's direction: effect > margin by more than K_SE standard errors."""
    text = (
        f"{what} exceeds {margin:g} {unit} by more than {K_SE} s.e."
        if margin
        else f"{what} is above zero by more than {K_SE} s.e."
    )
    return Test(exceeds(effect, spread, margin), text)


def below(effect: float, spread: float, margin: float, what: str = "the effect", unit: str = "points") -> Test:
    """One-sided equivalence bound: effect + K_SE standard errors stays below margin (a claim of
    "no large effect": the data must rule a large one out, not merely fail to detect it)."""
    return Test(effect + K_SE * spread < margin, f"{what} + {K_SE} s.e. stays below {margin:g} {unit}")


def within(effect: float, spread: float, margin: float, what: str = "the difference", unit: str = "points") -> Test:
    """Equivalence (two one-sided tests at K_SE s.e.): effect ± K_SE standard errors inside ±margin,
    for a claim of "similar" or "no effect"."""
    return Test(abs(effect) + K_SE * spread < margin, f"{what} ± {K_SE} s.e. lies within ±{margin:g} {unit}")


def quoted(sentence: str, test: str, source: str = "the paper") -> str:
    """A criterion: the sentence it tests (the paper's words; or, where the paper states the claim
    in no sentence of its own, `source` names where the words come from), then the test applied."""
    return f'{source}: "{sentence}"; tested as: {test}'


def mcnemar(only_a: int, only_b: int, n: int) -> tuple[float, float]:
    """Paired difference of two rates measured on the same n trials, from the discordant counts
    (only_a: trials a got and b missed; only_b: the reverse): (rate a - rate b, its standard
    error), McNemar's test as a difference in K_SE standard errors."""
    n = max(n, 1)
    d = (only_a - only_b) / n
    return d, (max(only_a + only_b - n * d * d, 0.0)) ** 0.5 / n


def cochran_q(hits) -> tuple[float, int]:
    """Cochran's Q for k related binary measurements on the same subjects: hits is [subjects][k]
    of 0/1. Returns (Q, degrees of freedom k - 1); under "every column has the same rate" Q is
    chi-square with k - 1 degrees of freedom."""
    rows = [[int(bool(v)) for v in row] for row in hits]
    k = len(rows[0])
    cols = [sum(row[j] for row in rows) for j in range(k)]
    per_row = [sum(row) for row in rows]
    total = sum(per_row)
    denom = k * total - sum(r * r for r in per_row)
    if denom == 0:
        return 0.0, k - 1
    return (k - 1) * (k * sum(c * c for c in cols) - total * total) / denom, k - 1


def chi2_z(x: float, df: int) -> float:
    """How far a chi-square statistic x with df degrees of freedom lies above its null, in
    standard deviations of a normal (Wilson-Hilferty: (x / df)^(1/3) is nearly normal)."""
    m = 2 / (9 * df)
    return ((max(x, 0.0) / df) ** (1 / 3) - (1 - m)) / m**0.5


def fixed(points: list[dict], name: str) -> dict:
    """The grid point a claim about data set `name` is decided on: the grid's first setting,
    fixed before any training, read at its final epoch. Choosing the best point or epoch by
    test accuracy (the paper's statistic, shown beside it) would select on the test set."""
    for point in points:
        if point["dataset"] == name:
            return point
    raise KeyError(f"the record's grid has no point for data set {name!r}")


def signal(acc: float, chance: float) -> bool:
    """Has a model learnt enough to decide a claim about what it learnt: an accuracy at least
    SIGNAL points above chance (a model just above chance says little about its training set)?"""
    return round(100 * (acc - chance), 9) >= SIGNAL
