"""dualjax.configs: typed overrides, strict dicts and generated argparse flags of a frozen dataclass
(here one shaped like the Monte Carlo study's config)."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from dualjax import configs


@dataclasses.dataclass(frozen=True)
class Study:
    """Settings of a toy study.

    Attributes:
        n: embedding dimension
            (a in R^n).
        eta: step size.
        init_scale: scale s of the initial point.
        rho_range: interval of rho.
    """

    n: int = 2
    eta: float = 0.05
    init: str = dataclasses.field(default="torch", metadata={"help": "initial law", "choices": ("torch", "gauss")})
    init_scale: float = 1.0
    rho_range: tuple[float, float] = (0.0, 3.0)
    rules: tuple[str, ...] = ("sg", "ema")
    verbose: bool = False
    devices: int | None = None


def test_override_parses_every_field_type():
    got = configs.override(Study(), ["n=3", "eta=1", " init = gauss ", "init_scale=2.5e-1", "rho_range=(1, 2)",
                                     "rules=sg", "verbose=yes", "devices=4"])
    assert got == Study(n=3, eta=1.0, init="gauss", init_scale=0.25, rho_range=(1.0, 2.0), rules=("sg",),
                        verbose=True, devices=4)
    assert type(got.eta) is float and all(type(r) is float for r in got.rho_range)
    assert configs.override(got, ["devices=none", "rules=", "rho_range=0,1"]) == dataclasses.replace(
        got, devices=None, rules=(), rho_range=(0.0, 1.0))
    # a dict of Python values is checked the same way; an int is a float, a bool is not an int
    assert configs.override(Study(), {"eta": 2, "rules": ["ema"]}) == Study(eta=2.0, rules=("ema",))


@pytest.mark.parametrize("item, message", [
    ("m=3", r"unknown config key 'm'; valid keys: \['devices', 'eta', 'init', 'init_scale', 'n'"),
    ("n", "override 'n' must look like key=value"),
    ("n=1.5", "n='1.5' cannot be parsed as int"),
    ("eta=fast", "eta='fast' cannot be parsed as float"),
    ("verbose=2", "verbose='2' is not a boolean"),
    ("rho_range=1,2,3", "rho_range=.* must have 2 entries"),
    ("rho_range=(1,", r"rho_range='\(1,' is not a tuple literal"),
    ("n=none", "n='none' cannot be parsed as int"),
])
def test_override_errors_name_the_key_and_value(item, message):
    with pytest.raises(ValueError, match=message):
        configs.override(Study(), [item])


def test_python_values_of_the_wrong_type_are_rejected():
    for changes, message in (({"n": True}, "n=True must be INT"), ({"verbose": 1}, "verbose=1 must be BOOL"),
                             ({"init": 3}, "init=3 must be STR"), ({"rules": ("sg", 1)}, "rules=1 must be STR"),
                             ({"n": None}, "n=None is not allowed; n is INT")):
        with pytest.raises(ValueError, match=message):
            configs.override(Study(), changes)


def test_from_dict_round_trips_json_and_is_strict():
    cfg = Study(n=5, rho_range=(0.5, 1.5), devices=2)
    assert configs.from_dict(Study, json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert configs.from_dict(Study, {"n": 4}) == Study(n=4)  # missing keys take their defaults
    with pytest.raises(ValueError, match=r"unknown config keys \['size'\]"):
        configs.from_dict(Study, {"n": 4, "size": 1})
    with pytest.raises(ValueError, match="eta='x'"):
        configs.from_dict(Study, {"eta": "x"})
    # stored JSON is taken as it is: a string where a number belongs is an error, not parsed
    for raw, message in (({"n": "4"}, "n='4' must be INT"), ({"rho_range": "0,1"}, "rho_range='0,1' must be a list"),
                         ({"rho_range": [0, "1"]}, "rho_range='1' must be FLOAT"),
                         ({"devices": "none"}, "devices='none' must be INT|none")):
        with pytest.raises(ValueError, match=message):
            configs.from_dict(Study, raw)
    with pytest.raises(ValueError, match="must be a JSON object"):
        configs.from_dict(Study, [1, 2])


def test_help_from_docstring_table_and_metadata():
    helps = configs.help_texts(Study)
    assert helps["n"] == "embedding dimension (a in R^n)."  # continuation line joined
    assert helps["init"] == "initial law" and helps["rho_range"] == "interval of rho."
    assert "verbose" not in helps


def test_flags_from_fields(capsys):
    parser = argparse.ArgumentParser(prog="study")
    parser.add_argument("--out")
    configs.add_flags(parser, Study, defaults=Study(n=7), exclude=("rules",))
    args = parser.parse_args(["--n", "3", "--init-scale", "0.5", "--rho-range", "0,2", "--verbose", "--out", "x"])
    base = Study(eta=0.1)
    assert configs.from_flags(args, base) == dataclasses.replace(base, n=3, init_scale=0.5, rho_range=(0.0, 2.0),
                                                                 verbose=True)
    assert configs.from_flags(parser.parse_args(["--no-verbose"]), Study(verbose=True)) == Study()
    text = parser.format_help()
    assert "--init-scale FLOAT" in text and "--rho-range FLOAT,FLOAT" in text and "--devices INT|none" in text
    assert "embedding dimension (a in R^n). (default: 7)" in " ".join(text.split())
    assert "--rules" not in text
    for argv, message in ((["--n", "x"], "argument --n: n='x' cannot be parsed as int"),
                          (["--init", "uniform"], "argument --init: invalid choice: 'uniform'")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown config key 'size'"):
        configs.add_flags(argparse.ArgumentParser(), Study, only=("size",))
