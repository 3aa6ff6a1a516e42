"""The ``specinv`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from specinv.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "rbs_W_D_2layers.yaml"


def read_csv(path: Path):
    header = path.read_text().splitlines()[0].split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1)


def test_simulate_writes_csv_and_plot(tmp_path):
    out, fig = tmp_path / "spectrum.csv", tmp_path / "spectrum.png"
    assert main(["rbs", "simulate", str(EXAMPLE), "-o", str(out), "--plot", str(fig)]) == 0
    header, data = read_csv(out)
    assert header == ["channel", "energy_keV", "counts"]
    assert data.shape == (1024, 3)
    assert np.array_equal(data[:, 0], np.arange(1024))
    assert np.allclose(data[:, 1], 3.0 * np.arange(1024))
    assert data[:, 2].max() > 1000 and (data[:, 2] >= 0).all()
    assert fig.stat().st_size > 10_000 and fig.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_noise_option_adds_expected_column(tmp_path):
    out = tmp_path / "noisy.csv"
    assert main(["rbs", "simulate", str(EXAMPLE), "-o", str(out), "--noise", "--seed", "3"]) == 0
    header, data = read_csv(out)
    assert header == ["channel", "energy_keV", "counts", "expected_counts"]
    assert np.array_equal(data[:, 2], np.round(data[:, 2]))
    assert abs(data[:, 2].sum() - data[:, 3].sum()) < 5 * np.sqrt(data[:, 3].sum())


def test_bad_file_gives_clear_error_and_exit_code(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("energy_keV: 3000", "energy_keV: -1"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "specinv",
            "rbs",
            "simulate",
            str(bad),
            "-o",
            str(tmp_path / "x.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "bad.yaml: beam.energy_keV: expected a number > 0, got -1" in result.stderr
    assert not (tmp_path / "x.csv").exists()
