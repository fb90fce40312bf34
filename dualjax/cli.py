"""The ``dualjax`` command. Each subcommand lives in :mod:`dualjax.commands` as a module with
``add_arguments(parser)`` and ``run(args) -> int``; they are imported only when used, so
``dualjax --help`` stays fast.

One convention for every command (:mod:`dualjax.errors`): bad input exits with 2, a failure of
the work with 1, each with one line ``dualjax <command>: error: <message>`` on stderr and no
traceback (``--debug`` or ``DUALJAX_DEBUG=1`` adds it). The library's log messages (a corrupt
checkpoint moved aside, a resume from step 0) go to stderr as ``dualjax <command>: <message>``.

Every command keeps what it compiles (XLA programs, the Monte Carlo kernels) in the user's cache
folder (:mod:`dualjax.cache`), so that running it again does not compile again; ``--no-cache`` or
``DUALJAX_NO_CACHE=1`` turns that off.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import traceback

from dualjax import cache, errors

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


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`dualjax.errors.UsageError` (one line, exit 2)."""

    def error(self, message: str):
        raise errors.UsageError(f"{message} (see {self.prog} --help)")


class _Stderr(logging.Handler):
    """Log records to the *current* ``sys.stderr`` (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


_HANDLER = _Stderr(logging.INFO)


def _log_to_stderr(prog: str) -> None:
    _HANDLER.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    logger = logging.getLogger("dualjax")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # absl's root handler would print them twice


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dualjax", description="dualjax: SG / EMA / plain dynamics of non-contrastive SSL, checked by computation.")
    _global_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in _available().items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def _global_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command takes, before or after its name."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or DUALJAX_DEBUG=1)")
    parser.add_argument("--no-cache", action="store_true",
                        help=f"do not keep compiled programs in {cache.default_dir()} (or {cache.NO_CACHE_ENV}=1)")


def _enable_cache(prog: str) -> None:
    """The compilation caches in the user's cache folder; a folder that cannot be made costs only
    the compile time, so it is a warning, not an error."""
    try:
        cache.enable()
    except OSError as err:
        print(f"{prog}: warning: compilation cache off ({_one_line(err)})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("DUALJAX_DEBUG", "") not in ("", "0")
    no_cache = cache.disabled_by_env()
    while argv and argv[0] in ("--debug", "--no-cache"):
        debug, no_cache = debug or argv[0] == "--debug", no_cache or argv[0] == "--no-cache"
        argv = argv[1:]
    available = _available()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"dualjax: error: unknown command {argv[0]!r}; choose one of {sorted(available)}", file=sys.stderr)
            return errors.BAD_INPUT
        build_parser().print_help()
        return 0 if argv else errors.BAD_INPUT
    name = argv[0]
    prog = f"dualjax {name}"
    _log_to_stderr(prog)
    try:
        module = importlib.import_module(available[name][0])
        parser = Parser(prog=prog, description=available[name][1])
        module.add_arguments(parser)
        _global_flags(parser)
        args = parser.parse_args(argv[1:])
        debug = debug or args.debug
        if not (no_cache or args.no_cache):
            _enable_cache(prog)
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns exceptions into exit codes
        code = errors.exit_code(err)
        if debug:
            traceback.print_exc()
        if code is None:
            print(f"{prog}: internal error: {type(err).__name__}: {_one_line(err)}"
                  + ("" if debug else " (rerun with --debug for the traceback)"), file=sys.stderr)
            return errors.FAILURE
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return code


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text += f": {err.filename}"
    text = "; ".join([text, *getattr(err, "__notes__", [])])
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
