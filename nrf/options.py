"""Every option of every section, declared once: name, kind, allowed values, default per profile.

A section lists its options (`OPTIONS`); `resolve` merges the profile's defaults with the
overrides a notebook, `nrf run`, `nrf sweep`, `nrf compute` or papermill passed, and rejects an
unknown name or a bad value with one line naming the option and what is allowed:

    cfg = options.resolve(gallery.OPTIONS, "smoke", {"width": 32, "eps": "8/255"})

Profiles: `smoke` (the embedded sample, CPU minutes, computed by CI), `medium` (full CIFAR-10,
the paper's architectures at reduced width and short schedules: hours on two CPU cores) and
`paper` (the paper's settings on full CIFAR-10, for a GPU). A default is one value, or a mapping profile -> value.
"""

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import runtime

PROFILES = ("smoke", "medium", "paper")
# The precision each profile computes in (runtime.precision): fixed by the profile, never by the
# machine, so a profile's numbers mean the same everywhere. bf16 autocast trains and attacks
# 1.7-2x faster on CPUs with bf16 instructions (bench/bench_train.py) and on GPUs; smoke stays
# fp32, exact and as fast at its tiny widths. NRF_PRECISION=fp32 (or bf16) overrides it for a run.
PRECISION = {"smoke": "fp32", "medium": "bf16", "paper": "bf16"}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUMBER = re.compile(r"^\s*[-+]?[0-9.eE+-]+(\s*/\s*[-+]?[0-9.eE+-]+)?\s*$")
INT_BITS = 64  # an integer option fits a signed 64-bit integer (seeds go to torch's generators)
WIDTH_MAX = 512  # 8x the paper's ResNet-18 width: 0.7 billion weights, 8 GiB with their gradients and momentum


@dataclass(frozen=True)
class Option:
    """One option. kind: int, float, str, bool, ints, floats, strs, class (a class name or
    index), classes (a list of them), mapping. low / high bound numbers (and list items); choices bound strings;
    optional: None is a value (its meaning is in `help`)."""

    name: str
    default: object
    help: str
    kind: str = "float"
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    optional: bool = False
    by_profile: bool = field(init=False, default=False)

    def __post_init__(self):
        by_profile = isinstance(self.default, dict) and set(self.default) <= set(PROFILES)
        if by_profile and set(self.default) != set(PROFILES):  # a profile added, this option not told
            raise ValueError(
                f"option {self.name}: its default names profiles {sorted(self.default)}; "
                f"give a value for each of {list(PROFILES)}"
            )
        object.__setattr__(self, "by_profile", by_profile)

    def default_for(self, profile: str):
        return self.default[profile] if self.by_profile else self.default

    def allowed(self) -> str:
        """What the option accepts, in words (for error messages and `nrf options`)."""
        bound, low, high = "", self._text(self.low), self._text(self.high)
        if self.low is not None and self.high is not None:
            bound = f" in [{low}, {high}]"
        elif self.low is not None:
            bound = f" >= {low}"
        elif self.high is not None:
            bound = f" <= {high}"
        words = {
            "int": f"an integer{bound}",
            "float": f"a finite number{bound}",
            "bool": "true or false",
            "str": f"one of {list(self.choices)}" if self.choices else "a string",
            "ints": f"a {'' if self.optional else 'non-empty '}list of integers{bound}",
            "floats": f"a non-empty list of finite numbers{bound}",
            "strs": f"a non-empty list of {list(self.choices) if self.choices else 'strings'}",
            "class": "a class name or index",
            "classes": "a non-empty list of distinct class names or indices",
            "mapping": "a mapping NAME -> value",
        }[self.kind]
        return words + (", or null" if self.optional else "")

    def _text(self, bound) -> str:
        return f"{bound:g}" if bound is not None and self.kind in ("float", "floats") else str(bound)

    def parse(self, value):
        """The value, coerced (1e-3 or 8/255 typed as text become numbers), or ValueError."""
        if value is None:
            if self.optional:
                return None
            raise self._bad(value)
        if self.kind in ("int", "float"):
            return self._number(value, self.kind, value)
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise self._bad(value)
        if self.kind == "str":
            if isinstance(value, str) and (not self.choices or value in self.choices):
                return value
            raise self._bad(value)
        if self.kind == "class":
            if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                return value
            raise self._bad(value)
        if self.kind == "mapping":
            if isinstance(value, dict):
                return dict(value)
            raise self._bad(value)
        if not isinstance(value, (list, tuple)) or (not value and not (self.optional and self.kind == "ints")):
            raise self._bad(value)  # only an optional list of integers (milestones) may be empty
        if self.kind in ("ints", "floats"):
            return [self._number(v, self.kind[:-1], value) for v in value]
        if self.kind == "strs":
            if all(isinstance(v, str) and (not self.choices or v in self.choices) for v in value):
                return list(value)
            raise self._bad(value)
        if self.kind == "classes":
            if all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value) and len(
                set(value)
            ) == len(value):
                return list(value)
            raise self._bad(value)
        raise AssertionError(f"unknown option kind {self.kind!r}")

    def _number(self, v, kind: str, given):
        if isinstance(v, str) and NUMBER.match(v):  # YAML reads 1e-3 as text; 8/255 is a fraction
            num, _, den = v.partition("/")
            try:
                v = float(num) / float(den) if den else float(num)
            except (ValueError, ZeroDivisionError):
                raise self._bad(given) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self._bad(given)
        if kind == "int":
            if v != int(v):
                raise self._bad(given)
            v = int(v)
            if not -(2 ** (INT_BITS - 1)) <= v < 2 ** (INT_BITS - 1):
                raise ValueError(
                    f"option {self.name} must be {self.allowed()} of at most {INT_BITS} bits, got {given!r}"
                )
        else:
            v = float(v)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise self._bad(given)
        return v

    def _bad(self, value) -> ValueError:
        return ValueError(f"option {self.name} must be {self.allowed()}, got {value!r}")


def resolve(options: list[Option], profile: str, overrides: dict | None = None, section: str = "") -> dict:
    """The profile's defaults with `overrides` applied and checked: {"profile": ..., name: value}."""
    if profile not in PROFILES:
        raise ValueError(f"option profile must be one of {list(PROFILES)}, got {profile!r}")
    by_name = {o.name: o for o in options}
    overrides = dict(overrides or {})
    for name in overrides:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f" of section {section}" if section else ""
            raise ValueError(f"unknown option {name!r}{where}{hint} (allowed: {', '.join(sorted(by_name))})")
    cfg = {"profile": profile}
    for o in options:
        cfg[o.name] = o.parse(overrides[o.name] if o.name in overrides else o.default_for(profile))
    return cfg


def precision(profile: str) -> str:
    """The precision of `profile` (PRECISION), or $NRF_PRECISION where it is set, checked."""
    chosen = os.environ.get("NRF_PRECISION") or PRECISION[profile]
    if chosen not in runtime.PRECISIONS:
        raise ValueError(f"NRF_PRECISION must be one of {list(runtime.PRECISIONS)}, got {chosen!r}")
    return chosen


def options_file(path) -> dict:
    """Options from a YAML file holding a mapping NAME -> value (`--params FILE`; e.g.
    grids/paper-full.yaml, the paper's full constructed-data grid), or a one-line error."""
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"--params {path}: cannot read it as YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(spec, dict) or not all(isinstance(k, str) for k in spec):
        raise ValueError(f"--params {path} must hold a mapping NAME -> value, got {type(spec).__name__}")
    return spec


def table(options: list[Option], profile: str | None = None) -> list[dict]:
    """One row per option: name, allowed values, default (per profile, or for `profile`), meaning."""
    rows = []
    for o in options:
        default = (
            o.default_for(profile)
            if profile
            else (", ".join(f"{p}: {o.default[p]!r}" for p in PROFILES) if o.by_profile else repr(o.default))
        )
        rows.append({"option": o.name, "allowed": o.allowed(), "default": default, "meaning": o.help})
    return rows


def class_index(name_or_index, classes, option: str) -> int:
    """A class given by name or index, checked against the data's classes."""
    classes = list(classes)
    if isinstance(name_or_index, str) and name_or_index in classes:
        return classes.index(name_or_index)
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool) and 0 <= name_or_index < len(classes):
        return name_or_index
    raise ValueError(
        f"option {option} must name classes in {classes} or indices in [0, {len(classes)}), got {name_or_index!r}"
    )


def class_indices(values, classes, option: str = "targets") -> list[int]:
    """A `classes` option (None: every class) as distinct indices into `classes`."""
    if values is None:
        return list(range(len(classes)))
    picked = [class_index(v, classes, option) for v in values]
    if len(set(picked)) != len(picked):
        raise ValueError(f"option {option} must be distinct classes, got {values!r}")
    return picked


# ---- Option groups shared by many sections -------------------------------------------------------

# The trained models every section attacks or probes (PAPER.md, "Models"): CIFAR ResNet-18 at
# `width`, SGD with momentum and step decay (medium: one-cycle, which reaches in 15 epochs what
# step decay needs many more for); the robust one is PGD-trained on `robust_norm`.
MODELS = [
    Option(
        "data",
        {"smoke": "sample", "medium": "cifar10", "paper": "cifar10"},
        "the data: 'sample' (embedded), 'cifar10' (full CIFAR-10, where present) or a path",
        kind="str",
    ),
    Option(
        "width",
        {"smoke": 16, "medium": 16, "paper": 64},
        "ResNet-18 base width (64 is the paper's; memory grows with its square)",
        kind="int",
        low=1,
        high=WIDTH_MAX,
    ),
    Option("epochs", {"smoke": 10, "medium": 15, "paper": 150}, "natural training epochs", kind="int", low=1),
    Option("lr", {"smoke": 0.05, "medium": 0.2, "paper": 0.1}, "SGD learning rate", low=1e-12),
    Option("batch_size", {"smoke": 128, "medium": 256, "paper": 128}, "training batch size", kind="int", low=1),
    Option(
        "schedule",
        {"smoke": "step", "medium": "onecycle", "paper": "step"},
        "learning-rate schedule: step "
        "(x0.1 at each milestone) or onecycle (linear climb over the first 20% of steps, then linear to 0)",
        kind="str",
        choices=("step", "onecycle"),
    ),
    Option(
        "milestones",
        {"smoke": [8], "medium": [], "paper": [50, 100]},
        "epochs at which the learning rate drops x0.1 (those past a model's epochs are ignored)",
        kind="ints",
        low=1,
        optional=True,
    ),
    Option("weight_decay", 5e-4, "SGD weight decay", low=0),
    Option("robust_epochs", {"smoke": 5, "medium": 12, "paper": 150}, "adversarial training epochs", kind="int", low=1),
    Option(
        "robust_norm",
        "l2",
        "threat model of the robust model and of robust accuracy",
        kind="str",
        choices=("l2", "linf"),
    ),
    Option("robust_eps", 1.0, "its radius (the paper's CIFAR-10 l2 eps is 1.0)", low=1e-12),
    Option("adv_steps", 3, "PGD steps of adversarial training (step 2/3 eps)", kind="int", low=1),
    Option(
        "eval_steps",
        {"smoke": 10, "medium": 20, "paper": 20},
        "PGD steps of the robust-accuracy evaluation",
        kind="int",
        low=1,
    ),
    Option("seed", 0, "seed of the models and of the section's random draws (Part II: uap_seed)", kind="int"),
]

# The threat model of an attack section: eps null means the paper's eps for that norm.
DEFAULT_EPS = {"l2": 1.0, "linf": 8 / 255}
THREAT = [
    Option("norm", "l2", "threat model of the perturbations", kind="str", choices=("l2", "linf")),
    Option("eps", None, "radius of the threat model (null: 1.0 for l2, 8/255 for linf)", low=1e-12, optional=True),
]


def threat(cfg: dict) -> tuple[str, float]:
    """(norm, eps) of a section's resolved options."""
    return cfg["norm"], DEFAULT_EPS[cfg["norm"]] if cfg["eps"] is None else cfg["eps"]


# How Part I solves a targeted universal perturbation (PAPER.md, "Definitions"): normalised-
# gradient PGD over mini-batches of a base set. step is a fraction of eps: the paper's 2.0 for
# an l2 ball of 6.0 is eps / 3; on CIFAR-10 the learning-dynamics figure (I-F9) backs 0.2.
UNIVERSAL = [
    Option(
        "base_size",
        {"smoke": 256, "medium": 2000, "paper": 10000},
        "training images in the shared base set",
        kind="int",
        low=1,
    ),
    Option(
        "solver_epochs",
        {"smoke": 8, "medium": 10, "paper": 10},
        "passes of the solver over the base set",
        kind="int",
        low=1,
    ),
    Option("solver_step", 0.2, "solver step, as a fraction of eps", low=1e-12),
    Option(
        "solver_batch",
        {"smoke": 128, "medium": 256, "paper": 256},
        "base-set images per solver step",
        kind="int",
        low=1,
    ),
]
