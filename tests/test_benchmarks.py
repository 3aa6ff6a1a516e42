"""The benchmark scripts run (on tiny sizes) and their work counts add up; no timings tested."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulate_throughput_runs_with_profile(monkeypatch, capsys):
    bench = _load("simulate_throughput")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "simulate_throughput.py",
            "--batch",
            "6",
            "--rounds",
            "1",
            "--single-repeat",
            "1",
            "--threads",
            "1",
            "--samples",
            "A",
            "--profile",
        ],
    )
    bench.main()
    out = capsys.readouterr().out
    assert "| A | – | 1 |" in out  # no JaBS given: no ratio
    assert "under the profiler" in out and "floor:" in out


def test_jabs_sample_file_holds_the_same_areal_densities():
    """The JaBS side of the benchmark simulates the same samples: thickness = sum of the
    areal densities, percentages in JaBS's names (D is 2H), 0 where a layer lacks one."""
    bench = _load("simulate_throughput")
    text = bench.jabs_sample_file([["W", "D"], ["D"]], [300.0, 100.0, 50.0])
    header, first, second = (line.split() for line in text.splitlines())
    assert header == ["thick", "W", "2H"]
    assert [float(x) for x in first] == [400.0, 75.0, 25.0]
    assert [float(x) for x in second] == [50.0, 0.0, 100.0]


def test_work_per_spectrum_counts_window_elements():
    """The instrumented count equals the nodes of the spectrum assembly times their windows."""
    bench = _load("simulate_throughput")
    sim = bench.RBSSimulator(bench.reference_setup(), bench.SAMPLES["A"], device="cpu")
    params = torch.tensor(
        [[300.0, 200.0, 1000.0, 800.0], [3000.0, 50.0, 50.0, 4000.0]], dtype=torch.float64
    )
    from specinv.physics.rbs import spectrum

    original = spectrum._add_local
    work = bench.work_per_spectrum(sim, params)
    assert spectrum._add_local is original  # the instrumentation is removed again
    # each active node has two half-windows of at least 6 edges each
    assert work["active nodes"] > 0
    assert work["window elements"] >= 12 * work["active nodes"]


def test_fit_throughput_runs(monkeypatch, capsys):
    bench = _load("fit_throughput")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "fit_throughput.py",
            "--spectra",
            "4",
            "--evaluations-per-parameter",
            "5",
            "--scipy-spectra",
            "1",
            "--threads",
            "1",
        ],
    )
    bench.main()
    out = capsys.readouterr().out
    assert "first 1 identical to scipy: True" in out
    assert "Levenberg-Marquardt, 4 at once" in out


def test_xrd_throughput_runs(monkeypatch, capsys):
    bench = _load("xrd_throughput")
    monkeypatch.setattr(
        sys,
        "argv",
        ["xrd_throughput.py", "--batch", "4", "--repeat", "1", "--points", "51"],
    )
    bench.main()
    out = capsys.readouterr().out
    assert "51 points, 60 slices, batch 4" in out
    rows = [line for line in out.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1 and float(rows[0].split("|")[2]) > 0


def test_eels_throughput_runs(monkeypatch, capsys):
    bench = _load("eels_throughput")
    argv = ["eels_throughput.py", "--spectra", "8", "--steps", "1", "--batch", "2"]
    monkeypatch.setattr(sys, "argv", [*argv, "--networks", "vit"])
    bench.main()
    out = capsys.readouterr().out
    assert "simulation:" in out and "| vit annys2023 | 1.9 M |" in out


def test_rbs_measured_fit_runs_specinv_on_the_jabs_example():
    """The specinv half of benchmarks/rbs_measured_fit.py (JaBS itself is not installed
    here): the command fits the example to JaBS's reduced χ² or better."""
    from conftest import real_dir

    bench = _load("rbs_measured_fit")
    result = bench.run_specinv(real_dir() / "jabs_example")
    assert result["reduced_chi2"] < 1.339 and result["fit_s"] > 0


def test_jabs_cells_reproduce_jabss_fitted_values(monkeypatch):
    """benchmarks/rbs_jabs_roughness.py: fitted with JaBS's discretisation of the Gamma
    roughness, specinv lands on JaBS's fluence, Au thickness and roughness (within 1σ):
    the differences of the exact fit are that discretisation."""
    from conftest import real_dir

    bench = _load("rbs_jabs_roughness")
    example = real_dir() / "jabs_example"
    monkeypatch.setattr(bench.fitmodel, "rough_samples", bench.jabs_rough_samples)
    cells = bench.fit(example)
    values = dict(zip(bench.FREE, cells.values, strict=True))
    std = dict(zip(bench.FREE, cells.std, strict=True))
    for name in ("fluence", "layer1.thickness", "layer1.roughness", "layer2.thickness"):
        assert abs(values[name] - bench.JABS[name]) < std[name], name
    assert abs(cells.reduced_chi2 - 1.3388) < 0.03
