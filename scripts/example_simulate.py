"""Snakemake adapter: `specinv <technique> simulate FILE -o CSV --plot PNG`, run in this
interpreter (no `specinv` on PATH needed)."""

import sys

from _common import start

from specinv.cli import main

plan = start(snakemake)
code = main(
    [
        plan.dataset.technique,
        "simulate",
        str(snakemake.input[0]),
        "-o",
        snakemake.output.csv,
        "--plot",
        snakemake.output.png,
    ]
)
sys.exit(code)
