"""Accuracy targets set by what the data can give: every target of a run, its value and
whether it is met (``tables/targets.csv``).

A parameter is *determined* where the fitted test spectra leave it undetermined (an
infinite Cramér–Rao bound) in fewer than 5 % of them and an efficient estimator would
reach a median relative error (efficient MRE) of at most 10 %. For those, the network's
MRE must be at most 1.3 × the efficient MRE and the refinement's at most 1.1 ×, and the
refinement must not be worse than the network it starts from (a fit that trades a
determined parameter against undetermined ones fails this). For every
parameter the network's uncertainties must be calibrated: empirical 1σ and 2σ coverage
0.68 ± 0.04 and 0.95 ± 0.02, and an average coverage score (ACS) inside [−0.32, 0.68].
Of the fits, the network alone must pass the goodness-of-fit test in at least 75 % of the
spectra and the network followed by a fit in at least 95 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: a parameter is determined where it is undetermined in fewer than this share of the
#: spectra and its efficient MRE is at most DETERMINED_EFFICIENT_MRE
DETERMINED_UNDETERMINED_SHARE = 0.05
DETERMINED_EFFICIENT_MRE = 0.10
#: largest MRE / efficient MRE of a determined parameter: the network, the refinement
NETWORK_MRE_RATIO = 1.3
REFINED_MRE_RATIO = 1.1
#: largest refined MRE / network MRE of a determined parameter: no worse after the fit
REFINED_OVER_NETWORK = 1.0
#: empirical coverage of the ±1σ and ±2σ intervals: (target, tolerance)
COVERAGE_1SIGMA = (0.68, 0.04)
COVERAGE_2SIGMA = (0.95, 0.02)
#: the range of the average coverage score
ACS_RANGE = (-0.32, 0.68)
#: smallest shares of spectra accepted by the goodness-of-fit test
NETWORK_ACCEPTANCE = 0.75
FIT_ACCEPTANCE = 0.95


def determined(information: pd.DataFrame) -> pd.Series:
    """Per parameter (rows of an information-limit table): whether the data determine it."""
    return (information["undetermined"] < DETERMINED_UNDETERMINED_SHARE) & (
        information["efficient_MRE"] <= DETERMINED_EFFICIENT_MRE
    )


def _row(target: str, subject: str, value: float, required: str, met) -> dict:
    return {
        "target": target,
        "subject": subject,
        "value": float(value),
        "required": required,
        "met": None if met is None or not np.isfinite(value) else bool(met),
    }


def targets_table(
    information: pd.DataFrame,
    coverage: pd.DataFrame,
    methods: pd.DataFrame,
    network: str,
    refined: str,
    fits: Sequence[str],
) -> pd.DataFrame:
    """Every target, one row each: ``target`` (the index), ``subject`` (a parameter or a
    method), ``value``, ``required`` and ``met`` (empty where the value does not exist, e.g. the
    coverage of a network without uncertainties).

    Args:
        information: the information-limit table (per parameter: ``efficient_MRE``,
            ``undetermined`` and ``MRE <method>`` on the fitted spectra).
        coverage: the network's coverage table (``coverage_1sigma``, ``coverage_2sigma``,
            ``ACS``) on the test spectra.
        methods: the methods table (``acceptance`` per method, same spectra).
        network, refined: the row labels of the network and of its refinement.
        fits: labels of the network-started fits held to the fit acceptance.
    """
    rows = []
    seen = determined(information)
    for param, info in information.iterrows():
        if not seen[param]:  # the MRE targets do not apply: said so, with why
            rows.append(
                _row(
                    "not determined by the data (no MRE target)",
                    param,
                    info["efficient_MRE"],
                    f"undetermined in < {DETERMINED_UNDETERMINED_SHARE:.0%} of the spectra "
                    f"(here {info['undetermined']:.0%}) and efficient MRE <= "
                    f"{DETERMINED_EFFICIENT_MRE:.0%}",
                    None,
                )
            )
            continue
        for label, limit in ((network, NETWORK_MRE_RATIO), (refined, REFINED_MRE_RATIO)):
            ratio = info[f"MRE {label}"] / info["efficient_MRE"]
            rows.append(
                _row(
                    "MRE / efficient MRE",
                    f"{param}: {label}",
                    ratio,
                    f"<= {limit}",
                    ratio <= limit,
                )
            )
        worse = info[f"MRE {refined}"] / info[f"MRE {network}"]
        rows.append(
            _row(
                "refined MRE / network MRE",
                f"{param}: {refined}",
                worse,
                f"<= {REFINED_OVER_NETWORK}",
                worse <= REFINED_OVER_NETWORK,
            )
        )
    for param, cov in coverage.iterrows():
        for column, (centre, tol) in (
            ("coverage_1sigma", COVERAGE_1SIGMA),
            ("coverage_2sigma", COVERAGE_2SIGMA),
        ):
            value = cov[column]
            rows.append(
                _row(
                    column.replace("_", " "),
                    f"{param}: {network}",
                    value,
                    f"{centre} ± {tol}",
                    abs(value - centre) <= tol + 1e-12,
                )
            )
        low, high = ACS_RANGE
        rows.append(
            _row(
                "ACS",
                f"{param}: {network}",
                cov["ACS"],
                f"in [{low}, {high}]",
                low <= cov["ACS"] <= high,
            )
        )
    rows.append(
        _row(
            "goodness-of-fit acceptance",
            network,
            methods.loc[network, "acceptance"],
            f">= {NETWORK_ACCEPTANCE:.0%}",
            methods.loc[network, "acceptance"] >= NETWORK_ACCEPTANCE,
        )
    )
    for label in fits:
        value = methods.loc[label, "acceptance"]
        rows.append(
            _row(
                "goodness-of-fit acceptance",
                label,
                value,
                f">= {FIT_ACCEPTANCE:.0%}",
                value >= FIT_ACCEPTANCE,
            )
        )
    return pd.DataFrame(rows).set_index("target")
