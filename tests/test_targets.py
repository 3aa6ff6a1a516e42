"""The accuracy targets set by the information limit (tables/targets.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from specinv.evaluation.targets import determined, targets_table


def tables():
    information = pd.DataFrame(
        {
            "efficient_MRE": [0.02, 0.05, 0.30, np.inf],
            "undetermined": [0.0, 0.0, 0.0, 0.60],
            "MRE MDN100": [0.025, 0.08, 0.4, 0.5],
            "MRE MDN100 + gradient refinement": [0.021, 0.09, 0.35, 0.6],
        },
        index=pd.Index(["a", "b", "c", "d"], name="param"),
    )
    coverage = pd.DataFrame(
        {
            "ACS": [0.1, 0.7, -0.1, np.nan],
            "coverage_1sigma": [0.70, 0.60, 0.68, np.nan],
            "coverage_2sigma": [0.95, 0.99, 0.92, np.nan],
            "MRE": [0.02, 0.05, 0.3, 0.5],
        },
        index=information.index,
    )
    methods = pd.DataFrame(
        {"acceptance": [0.8, 0.96, 0.9]},
        index=["MDN100", "MDN100 + Autofit", "MDN100 + gradient refinement"],
    )
    return information, coverage, methods


def test_only_determined_parameters_get_mre_targets():
    information, coverage, methods = tables()
    assert determined(information).tolist() == [True, True, False, False]
    t = targets_table(
        information,
        coverage,
        methods,
        "MDN100",
        "MDN100 + gradient refinement",
        ["MDN100 + Autofit", "MDN100 + gradient refinement"],
    )

    def of(target):
        return t.loc[[target]].set_index("subject")

    ratio = of("MRE / efficient MRE")
    assert ratio.loc["a: MDN100", "value"] == 1.25 and ratio.loc["a: MDN100", "met"]
    assert np.isclose(ratio.loc["a: MDN100 + gradient refinement", "value"], 1.05)
    assert ratio.loc["a: MDN100 + gradient refinement", "met"]
    assert not ratio.loc["b: MDN100", "met"]  # 1.6 > 1.3
    assert not ratio.loc["b: MDN100 + gradient refinement", "met"]  # 1.8 > 1.1
    # the refinement must not make a determined parameter worse than the network
    worse = of("refined MRE / network MRE")
    assert list(worse.index) == [
        "a: MDN100 + gradient refinement",
        "b: MDN100 + gradient refinement",
    ]
    assert worse["met"].tolist() == [True, False]  # 0.021/0.025; 0.09/0.08
    assert np.isclose(worse["value"].iloc[1], 0.09 / 0.08)
    assert {s.split(":")[0] for s in ratio.index} == {"a", "b"}
    skipped = of("not determined by the data (no MRE target)")
    assert list(skipped.index) == ["c", "d"] and skipped["met"].isna().all()
    assert "(here 60%)" in skipped.loc["d", "required"]
    # calibration of every parameter; a network without uncertainty: no verdict
    one = of("coverage 1sigma")["met"]
    assert one.tolist()[:3] == [True, False, True] and one.iloc[3] is None
    two = of("coverage 2sigma")["met"]
    assert two.tolist()[:3] == [True, False, False]
    acs = of("ACS")["met"]
    assert acs.tolist()[:3] == [True, False, True]
    accepted = of("goodness-of-fit acceptance")
    assert accepted["met"].to_dict() == {
        "MDN100": True,
        "MDN100 + Autofit": True,
        "MDN100 + gradient refinement": False,
    }
    assert accepted.loc["MDN100", "required"] == ">= 75%"
