"""Samples and setups at the edges of what the simulator covers: said so, never a crash."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml
from torch.autograd import forward_ad

from specinv.config import ConfigError
from specinv.physics.rbs import (
    Detector,
    ExperimentError,
    Numerics,
    RBSSimulator,
    Setup,
    experiment_from_dict,
    load_experiment,
)
from specinv.physics.rbs.experiment import validate_layers
from specinv.techniques.rbs import RBSTechnique

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rbs_W_D_2layers.yaml"


def example_with(**changes) -> dict:
    """The example experiment file as a dictionary, with ``changes`` ("a.b.c": value) made."""
    data = yaml.safe_load(EXAMPLE.read_text())
    for path, value in changes.items():
        *keys, last = path.split(".")
        node = data
        for key in keys:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def oxygen_beam(structure, dtype=torch.float64) -> RBSSimulator:
    """10 MeV 16O at 165 deg: deuterium (2 u) cannot scatter it backwards, gold can."""
    setup = Setup(
        ion="16O",
        beam_energy_keV=10000.0,
        scattering_deg=165.0,
        detector=Detector(channels=512, gain_keV_per_channel=20.0, resolution_fwhm_keV=30.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=500.0,
    )
    return RBSSimulator(setup, structure, device="cpu", dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_sample_that_cannot_scatter_backwards_gives_a_differentiable_zero_spectrum(dtype):
    with pytest.warns(
        UserWarning,
        match=r"nothing in the sample can scatter the 16O beam \(15\.99 u\) into the detector "
        r"at 165 deg: .*at most asin\(m_target/m_ion\), here sample\.layers\[0\]\.D "
        r"\(2\.014 u\): 7\.23 deg, sample\.layers\[1\]\.D \(2\.014 u\): 7\.23 deg",
    ):
        sim = oxygen_beam([["D"], ["D"]], dtype)
    assert sim.reactions == ()
    for shape in ((2,), (3, 2)):  # one sample, a batch
        p = torch.full(shape, 1000.0, dtype=dtype, requires_grad=True)
        y = sim.simulate(p)
        assert y.shape == (*shape[:-1], 512)
        assert y.dtype == dtype and y.device == p.device
        assert y.requires_grad and bool((y == 0).all())
        y.sum().backward()
        assert torch.equal(p.grad, torch.zeros_like(p))
        with forward_ad.dual_level():
            dual = forward_ad.make_dual(p.detach(), torch.ones_like(p))
            tangent = forward_ad.unpack_dual(sim.simulate(dual)).tangent
        assert tangent is not None and tangent.shape == y.shape and bool((tangent == 0).all())
    # without derivatives to track, plain zeros
    assert not sim.simulate([1000.0, 10.0]).requires_grad


def test_elements_that_cannot_scatter_backwards_still_slow_the_beam():
    """Deuterium beside (or above) gold gives no counts of its own but slows the beam: no
    warning, a finite non-zero derivative; the partial spectrum of a deuterium layer alone is
    a differentiable zero."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = oxygen_beam([["D", "Au"]])
        stacked = oxygen_beam([["D"], ["Au"], ["D"]])
    p = torch.tensor([1000.0, 100.0], dtype=torch.float64, requires_grad=True)
    mixed.simulate(p).sum().backward()
    assert torch.isfinite(p.grad).all() and float(p.grad[0]) != 0.0
    q = torch.tensor([1000.0, 100.0, 1000.0], dtype=torch.float64, requires_grad=True)
    stacked.simulate(q).sum().backward()
    assert float(q.grad[0]) != 0.0 and float(q.grad[2]) == 0.0
    deep = stacked.simulate(q, first_layer=2)
    assert deep.requires_grad and bool((deep == 0).all())
    q.grad = None
    deep.sum().backward()
    assert torch.equal(q.grad, torch.zeros_like(q))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"detector.calibration.gain_keV_per_channel": 1e-9},
            r"detector\.resolution_fwhm_keV, detector\.calibration\.gain_keV_per_channel: a "
            r"resolution of 15 keV FWHM spans 1\.5e\+10 channels at a gain of 1e-09 "
            r"keV/channel; at most 10000 channels are supported",
        ),
        (  # the quadratic term lowers the gain towards the last channel
            {
                "detector.calibration.gain_keV_per_channel": 1.0,
                "detector.calibration.quadratic_keV_per_channel2": -4.88e-4,
            },
            r"detector\.resolution_fwhm_keV, .*: a resolution of 15 keV FWHM spans 2\.\d+e\+04 "
            r"channels at a gain of 0\.00\d+ "
            r"keV/channel \(gain \+ 2\*quadratic\*channel at channel 1024\)",
        ),
        (
            {"beam.energy_spread_fwhm_keV": 1e5},
            r"beam\.energy_spread_fwhm_keV, detector\.calibration\.gain_keV_per_channel: a beam "
            r"energy spread of 100000 keV FWHM spans 3\.33e\+04 channels",
        ),
        (  # the cut-off 2e6 channels below channel 0
            {
                "detector.calibration.offset_keV": 20000.0,
                "detector.calibration.gain_keV_per_channel": 0.01,
            },
            r"energy_cutoff_keV, detector\.calibration: .* from the cut-off at 50 keV \(channel "
            r"-1\.995e\+06, below channel 0 at offset_keV = 20000 .*: 1\.996e\+06 edges; at "
            r"most 1048576",
        ),
        ({"detector.channels": 10**7}, r"detector\.channels: expected at most 1048576, got "),
        ({"numerics.max_nodes_per_layer": 10**6}, r"numerics\.max_nodes_per_layer: expected 2 "),
        ({"numerics.gaussian_cutoff_sigmas": 1e4}, r"numerics\.gaussian_cutoff_sigmas: expected"),
        ({"numerics.grid_points_per_decade": 10**6}, r"numerics\.grid_points_per_decade: expect"),
    ],
)
def test_setups_that_imply_absurd_work_are_refused_on_reading(changes, message, tmp_path):
    """A gain of 1e-9 keV/channel made the simulator try to allocate 6.6 TB; now the file
    is refused when it is read, naming the keys, the values and the limit."""
    with pytest.raises(ExperimentError, match=message):
        experiment_from_dict(example_with(**changes))
    path = tmp_path / "absurd.yaml"
    path.write_text(yaml.safe_dump(example_with(**changes)))
    with pytest.raises(ExperimentError, match=r"absurd\.yaml: " + message):
        load_experiment(path)


def test_the_detector_and_setup_refuse_absurd_work_on_construction():
    with pytest.raises(ExperimentError, match=r"spans 1\.5e\+10 channels"):
        Detector(channels=1024, gain_keV_per_channel=1e-9, resolution_fwhm_keV=15.0)
    detector = Detector(
        channels=1024, gain_keV_per_channel=0.01, resolution_fwhm_keV=15.0, offset_keV=20000.0
    )
    with pytest.raises(ExperimentError, match=r"1\.996e\+06 edges"):
        Setup(
            beam_energy_keV=30000.0,
            scattering_deg=165.0,
            detector=detector,
            fluence_times_solid_angle_sr=1e11,
            energy_cutoff_keV=50.0,
        )


@pytest.mark.parametrize("gain", [0.1, 10.0])
@pytest.mark.parametrize("resolution", [1.0, 100.0])
def test_realistic_setups_are_within_the_limits(gain, resolution):
    """Gains of 0.1-10 keV/channel, 16384 channels, resolutions of 1-100 keV, 100 MeV ions,
    a cut-off below the calibration's offset, fine numerics: all accepted."""
    detector = Detector(
        channels=16384, gain_keV_per_channel=gain, resolution_fwhm_keV=resolution, offset_keV=500.0
    )
    Setup(
        ion="12C",
        beam_energy_keV=100_000.0,
        beam_spread_fwhm_keV=100.0,
        scattering_deg=150.0,
        detector=detector,
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=10.0,
        numerics=Numerics(max_nodes_per_layer=2000, grid_points_per_decade=200),
    )


SRIM = r"expected Z in 1\.\.92, the elements that the SRIM-2013 stopping tables cover"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"sample.layers": [{"W": 1000, "294Og": 10}]},
            r"sample\.layers\[0\]\.294Og: '294Og' has Z = 118; " + SRIM,
        ),
        (
            {"sample.layers": [{"W": 1000}, {"D": 10, "237Np": 5}]},
            r"sample\.layers\[1\]\.237Np: '237Np' has Z = 93; " + SRIM,
        ),
        ({"beam.ion": "294Og"}, r"beam\.ion: '294Og' has Z = 118; " + SRIM),
    ],
)
def test_elements_beyond_the_stopping_tables_are_refused_on_reading(changes, message, tmp_path):
    """Z > 92 used to pass validation and fail deep inside the table building."""
    path = tmp_path / "heavy.yaml"
    path.write_text(yaml.safe_dump(example_with(**changes)))
    with pytest.raises(ExperimentError, match=r"heavy\.yaml: " + message):
        load_experiment(path)


def test_elements_beyond_the_stopping_tables_are_refused_by_setup_and_simulator():
    detector = Detector(channels=1024, gain_keV_per_channel=3.0, resolution_fwhm_keV=15.0)
    kwargs = dict(
        beam_energy_keV=3000.0,
        scattering_deg=165.0,
        detector=detector,
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=50.0,
    )
    with pytest.raises(ExperimentError, match=r"beam\.ion: '239Pu' has Z = 94; " + SRIM):
        Setup(ion="239Pu", **kwargs)
    with pytest.raises(ExperimentError, match=r"sample\.layers\[1\]\.294Og: .*Z = 118; "):
        validate_layers([{"W": 1.0}, {"294Og": 1.0}])
    # a structure given to the simulator directly: refused before any table is built
    with pytest.raises(ExperimentError, match=r"sample\.layers\[1\]\.237Np: .*Z = 93; "):
        RBSSimulator(Setup(**kwargs), [["W"], ["D", "237Np"]], device="cpu")
    # the ends of the range are fine
    Setup(ion="1H", **kwargs)
    assert validate_layers([{"238U": 1.0, "H": 2.0}])[0].areal_densities == {"238U": 1.0, "H": 2.0}


def rbs_section(**changes) -> dict:
    """An ``rbs`` configuration section: the example's setup, a W/D sample of priors."""
    experiment = example_with(**changes)
    del experiment["sample"]
    return {"experiment": experiment, "sample": {"layers": [{"W": None, "D": None}]}}


def test_the_technique_refuses_elements_beyond_the_stopping_tables():
    section = rbs_section()
    assert RBSTechnique.from_config(section, device="cpu").structure == (("W", "D"),)
    section["sample"]["layers"] = [{"W": None}, {"D": None, "294Og": None}]
    with pytest.raises(ConfigError, match=r"sample\.layers\[1\]\.294Og: '294Og' has Z = 118"):
        RBSTechnique.from_config(section, device="cpu")
    with pytest.raises(ConfigError, match=r"experiment: beam\.ion: '294Og' has Z = 118; " + SRIM):
        RBSTechnique.from_config(rbs_section(**{"beam.ion": "294Og"}), device="cpu")
