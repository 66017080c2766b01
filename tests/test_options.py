"""One options system: defaults per profile, coercion of what researchers type, one-line errors."""

import pytest

from nrf import options
from nrf.options import Option

OPTS = [
    Option("width", {"smoke": 16, "medium": 32, "paper": 64}, "base width", kind="int", low=1),
    Option("lr", 0.1, "learning rate", low=1e-12),
    Option("eps", None, "radius (null: the norm's)", optional=True, low=1e-12),
    Option("norm", "l2", "threat model", kind="str", choices=("l2", "linf")),
    Option("extras", False, "more figures", kind="bool"),
    Option("Ks", [1, 2], "base-set sizes", kind="ints", low=1),
    Option("milestones", [5], "lr drops", kind="ints", low=1, optional=True),
    Option("targets", None, "classes (null: all)", kind="classes", optional=True),
]


def test_profile_defaults_and_overrides():
    assert options.resolve(OPTS, "smoke")["width"] == 16
    assert options.resolve(OPTS, "medium")["width"] == 32
    assert options.resolve(OPTS, "paper")["width"] == 64
    cfg = options.resolve(OPTS, "smoke", {"width": 32, "norm": "linf", "milestones": []})
    assert cfg == {
        "profile": "smoke",
        "width": 32,
        "lr": 0.1,
        "eps": None,
        "norm": "linf",
        "extras": False,
        "Ks": [1, 2],
        "milestones": [],
        "targets": None,
    }


@pytest.mark.parametrize("given, value", [("1e-3", 1e-3), ("8/255", 8 / 255), (" 2 / 4 ", 0.5), (1, 1.0), (0.5, 0.5)])
def test_numbers_as_researchers_type_them(given, value):
    assert options.resolve(OPTS, "smoke", {"lr": given})["lr"] == pytest.approx(value)


def test_integers_accept_integral_numbers_only():
    assert options.resolve(OPTS, "smoke", {"width": "1e2"})["width"] == 100
    assert options.resolve(OPTS, "smoke", {"width": 8.0})["width"] == 8


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("lr", "nan", "finite number"),
        ("lr", float("inf"), "finite number"),
        ("lr", "fast", "finite number"),
        ("lr", 0, ">= 1e-12"),
        ("lr", True, "finite number"),
        ("lr", "1/0", "finite number"),
        ("width", 2.5, "integer"),
        ("width", 0, "integer >= 1"),
        ("width", None, "integer"),
        ("norm", "l3", "one of ['l2', 'linf']"),
        ("extras", "yes", "true or false"),
        ("Ks", [], "non-empty list"),
        ("Ks", [1, 0], "integers >= 1"),
        ("Ks", 3, "list"),
        ("targets", ["dog", "dog"], "distinct"),
        ("targets", [1.5], "class names or indices"),
    ],
)
def test_bad_values_name_the_option_and_what_is_allowed(name, value, words):
    with pytest.raises(ValueError) as e:
        options.resolve(OPTS, "smoke", {name: value})
    message = str(e.value)
    assert message.startswith(f"option {name} must be") and words in message and "\n" not in message


def test_unknown_names_and_profiles():
    with pytest.raises(ValueError, match=r"unknown option 'wdith' of section toy; did you mean 'width'\?"):
        options.resolve(OPTS, "smoke", {"wdith": 3}, section="toy")
    with pytest.raises(ValueError, match="profile must be one of"):
        options.resolve(OPTS, "large")
    with pytest.raises(ValueError, match=r"option width: its default names profiles \['paper', 'smoke'\]"):
        Option("width", {"smoke": 16, "paper": 64}, "base width", kind="int")


def test_class_indices():
    classes = list(options.CIFAR10_CLASSES)
    assert options.class_indices(None, classes) == list(range(10))
    assert options.class_indices(["dog", 1], classes) == [5, 1]
    with pytest.raises(ValueError, match="option pair must name classes"):
        options.class_index("unicorn", classes, "pair")
    with pytest.raises(ValueError, match="distinct"):
        options.class_indices(["dog", 5], classes)


def test_threat_default_eps():
    cfg = options.resolve(options.THREAT, "smoke", {"norm": "linf"})
    assert options.threat(cfg) == ("linf", 8 / 255)
    assert options.threat(options.resolve(options.THREAT, "smoke", {"eps": "0.5"})) == ("l2", 0.5)


def test_table_lists_every_option():
    rows = options.table(OPTS)
    assert [r["option"] for r in rows] == [o.name for o in OPTS]
    assert rows[0]["default"] == "smoke: 16, medium: 32, paper: 64"
