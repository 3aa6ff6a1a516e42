"""The ``specinv`` command line: ``specinv <technique> <verb> ...``, the verbs of every
technique of the registry (:mod:`specinv.techniques`), e.g.

    specinv rbs simulate EXPERIMENT.yaml -o spectrum.csv [--plot spectrum.png]
                         [--noise --seed N] [--device cpu|cuda] [--log]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def seed_argument(text: str) -> int:
    """An argparse type for the techniques' verbs: a seed, a whole number in 0 … 2**63 − 1
    (numpy's and torch's generators take any of them)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected 0 … 2**63-1, got {text}")
    return value


def add_simulate_arguments(parser: argparse.ArgumentParser, plot_help: str) -> None:
    """The arguments every technique's ``simulate`` verb shares: the experiment file,
    ``-o``, ``--plot``, ``--noise``, ``--seed`` and ``--device``."""
    from pathlib import Path

    parser.add_argument("experiment", type=Path, help="experiment file (.yaml, .yml or .json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--plot", type=Path, help=plot_help)
    parser.add_argument(
        "--noise",
        action="store_true",
        help="counts column with Poisson noise (expected_counts column added)",
    )
    parser.add_argument(
        "--seed", type=seed_argument, default=0, help="seed of the Poisson noise (0 … 2**63-1)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")


def add_simulate_parser(
    subparsers: argparse._SubParsersAction, what: str, description: str, plot_help: str, func
) -> argparse.ArgumentParser:
    """A technique's ``simulate`` verb (``help``: simulate ``what`` of an experiment file)
    with the shared arguments (:func:`add_simulate_arguments`), running ``func``."""
    parser = subparsers.add_parser(
        "simulate", help=f"simulate {what} of an experiment file", description=description
    )
    add_simulate_arguments(parser, plot_help)
    parser.set_defaults(func=func)
    return parser


def write_simulated_csv(args: argparse.Namespace, technique, expected, axis_format: str) -> dict:
    """Write a ``simulate`` verb's CSV (``-o``): the technique's axis, then ``counts`` (with
    ``--noise`` drawn from the expected counts with ``--seed``, and ``expected_counts``);
    returns the columns."""
    import numpy as np

    from .fileio import write_csv_columns

    axis = technique.axis()
    columns = {axis.coordinate: axis.values}
    if args.noise:
        columns["counts"] = technique.add_noise(expected, np.random.default_rng(args.seed))
        columns["expected_counts"] = expected
    else:
        columns["counts"] = expected
    write_csv_columns(args.output, columns, [axis_format] + ["%.10g"] * (len(columns) - 1))
    return columns


def check_output_arguments(args: argparse.Namespace):
    """Check ``-o``, ``--plot`` and (if present) ``--device`` before any work; return the
    torch device (None without ``--device``).

    Raises:
        ConfigError: naming the option.
    """
    from .fileio import check_output_path
    from .plotting import check_figure_path

    check_output_path(args.output, "-o/--output")
    if getattr(args, "plot", None):
        check_figure_path(args.plot, "--plot")
    if getattr(args, "device", None) is None:
        return None
    from .devices import check_device

    return check_device(args.device, "--device")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line of every technique; with ``only`` (a technique's name), only that
    technique's verbs are loaded (the others are listed without importing them: a command
    starts without the other techniques' libraries, ~1 s)."""
    from .config import ConfigError
    from .techniques import available, technique_class

    parser = argparse.ArgumentParser(
        prog="specinv",
        description="The specinv command line: one group of verbs per technique "
        "(specinv <technique> <verb> --help).",
    )
    parser.add_argument("--version", action="version", version=f"specinv {__version__}")
    techniques = parser.add_subparsers(dest="technique", required=True)
    for name in available():
        if only is not None and name != only:
            techniques.add_parser(name, help=f"the {name} technique's verbs")
            continue
        try:
            cls = technique_class(name)
        except ConfigError as exc:  # a broken plug-in must not break the others
            print(f"specinv: warning: {exc}", file=sys.stderr)
            continue
        doc = (cls.__doc__ or name).strip().splitlines()[0]
        verbs = techniques.add_parser(name, help=doc, description=doc).add_subparsers(
            dest="command", required=True
        )
        cls.add_cli(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .threads import configure_threads, limit_spin_waiting

    limit_spin_waiting()  # before torch is imported (specinv.threads)
    from .techniques import available

    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in available() else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    from .config import ConfigError
    from .memory import keep_freed_memory

    keep_freed_memory()
    try:
        configure_threads()  # the job's allocation, not every core of the machine
        return args.func(args)
    except ConfigError as exc:
        print(f"specinv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
