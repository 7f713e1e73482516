"""Command line: ``bayesprune run | compare | plan | train | evaluate | export | latency | report | criteria |
models``.

Every user mistake ends in one line on stderr naming the problem and the fix, and exit code 2. One
module per family of commands (``prune``: run, compare; ``plan``; ``deploy``: export, latency;
``tools``: the rest); ``common`` holds the options several of them share.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import BayesPruneError, ConfigError
from .deploy import _cmd_export, _cmd_latency, _export_parser, _latency_parser
from .plan import _cmd_plan, _plan_parser
from .prune import _cmd_compare, _cmd_run, _compare_parser, _run_parser
from .tools import (_cmd_criteria, _cmd_evaluate, _cmd_models, _cmd_report, _cmd_train, _evaluate_parser,
                    _report_parser, _train_parser)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        sys.stderr.write(f"bayesprune: error: {message}; see {self.prog} --help\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesprune", description="Bayesian channel pruning for CNNs.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _run_parser(sub)
    _compare_parser(sub)
    _plan_parser(sub)
    _train_parser(sub)
    _evaluate_parser(sub)
    _export_parser(sub)
    _latency_parser(sub)
    _report_parser(sub)
    sub.add_parser("criteria", help="list the scoring criteria")
    sub.add_parser("models", help="list shipped networks and architectures")
    return parser


COMMANDS = {"run": _cmd_run, "compare": _cmd_compare, "plan": _cmd_plan, "train": _cmd_train,
            "evaluate": _cmd_evaluate, "export": _cmd_export, "latency": _cmd_latency, "report": _cmd_report,
            "criteria": _cmd_criteria, "models": _cmd_models}


DISTRIBUTED = ("run", "compare")  # the commands that run on the processes of a torchrun job


def _process_name() -> str:
    """`` (rank R of N)`` in a torchrun job (each process prints its own error), else empty."""
    from ..distributed import launched_processes

    processes = launched_processes()
    return f" (rank {os.environ.get('RANK', '?')} of {processes})" if processes > 1 else ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    warnings.formatwarning = lambda msg, cat, *_a, **_k: f"bayesprune: warning: {msg}\n"
    where = _process_name()
    try:
        if where and args.command not in DISTRIBUTED:
            raise ConfigError(f"bayesprune {args.command} runs in one process; start it without torchrun "
                              f"(only {' and '.join(DISTRIBUTED)} run on several)")
        return COMMANDS[args.command](args)
    except BayesPruneError as exc:
        sys.stderr.write(f"bayesprune{where}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("bayesprune: interrupted; files already written are complete\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
