"""Every option of every section, fed a wrong type, a non-finite number, an out-of-range value and
a misspelled name through the CLI: each is a one-line error naming the option, exit status 2,
before anything computes."""

import pytest

from nrf import cli, contents, records
from nrf.options import Option

WRONG_TYPE = {
    "int": "abc",
    "float": "abc",
    "str": "[1, 2]",
    "bool": "maybe",
    "ints": "abc",
    "floats": "abc",
    "strs": "5",
    "class": "1.5",
    "classes": "7",
    "mapping": "5",
}


def bad_values(o: Option) -> list[str]:
    values = [WRONG_TYPE[o.kind]]
    if o.kind in ("int", "float"):
        values.append(".nan")
    if o.kind in ("ints", "floats"):
        values.append("[.inf]")
    if o.low is not None:
        low = o.low - 1
        values.append(str(low) if o.kind in ("int", "float") else f"[{low}]")
    if o.high is not None:
        high = o.high + 1
        values.append(str(high) if o.kind in ("int", "float") else f"[{high}]")
    if o.choices:
        values.append("zzz" if o.kind == "str" else "[zzz]")
    return values


CASES = [
    (name, o.name, value)
    for name, section in contents.SECTIONS.items()
    for o in section.OPTIONS
    for value in bad_values(o)
]


@pytest.mark.parametrize("section, option, value", CASES)
def test_bad_value(section, option, value, capsys, forbid):
    forbid(records, "compute", "computed with a bad option")
    with pytest.raises(SystemExit) as e:
        cli.main(["compute", section, "-p", option, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"option {option} must be" in err, err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("section", contents.SECTIONS)
def test_misspelled_name(section, capsys, forbid):
    forbid(records, "compute", "computed with a bad option")
    name = contents.SECTIONS[section].OPTIONS[0].name
    with pytest.raises(SystemExit) as e:
        cli.main(["compute", section, "-p", name + "x", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"unknown option '{name}x'" in err and f"did you mean '{name}'" in err
    assert err.count("\n") == 1
