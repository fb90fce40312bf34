"""The ``dualjax`` command. Each subcommand lives in :mod:`dualjax.commands` as a module with
``add_arguments(parser)`` and ``run(args) -> int``; they are imported only when used, so
``dualjax --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("dualjax.commands.reproduce", "quick reproduction of the paper's claims, with report"),
    "linear": ("dualjax.commands.linear", "run SG / EMA / plain dynamics of the linear model"),
    "equilibria": ("dualjax.commands.equilibria", "enumerate SG/EMA equilibria of the linear model (Prop 4.5)"),
    "stability": ("dualjax.commands.stability", "Jacobian spectra and stability of the equilibria (Prop 4.10)"),
    "integrability": ("dualjax.commands.integrability", "Schwarz test: is the SG field a gradient field? (Prop 3.2)"),
    "montecarlo": ("dualjax.commands.montecarlo", "the m = 1 synthetic Monte Carlo study"),
    "train": ("dualjax.commands.train", "train a ViT / V-JEPA model with an SG, EMA or plain teacher"),
    "probe": ("dualjax.commands.probe", "attentive-probe evaluation of a trained checkpoint"),
    "diagnose": ("dualjax.commands.diagnose", "is a run collapsing? verdict over a run's metrics or dumped features"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualjax", description="dualjax: SG / EMA / plain dynamics of non-contrastive SSL, checked by computation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in _available().items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = _available()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose one of {sorted(available)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(available[name][0])
    parser = argparse.ArgumentParser(prog=f"dualjax {name}", description=available[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
