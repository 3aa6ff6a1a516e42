"""The XRD forward model (specinv.physics.xrd): crystal data, profiles, the recursive
Takagi–Taupin solution against its analytical limits, gradients, batching, and the
reproduction of a measured YSZ curve from the weights RaDMaX fitted to it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import shared_dir
from specinv.physics.xrd import (
    CrystalError,
    Lattice,
    ProfileError,
    XRDSetup,
    XRDSetupError,
    XRDSimulator,
    bspline_design_matrix,
    crystal_from_mapping,
    dw_from_strain,
    dw_spline,
    instrument_kernel,
    kinematic_amplitude,
    load_crystal,
    recursive_amplitude,
    reflection,
    slice_basis,
    strain_profile,
)
from specinv.physics.xrd.profiles import slice_heights_fraction

CU_KA1_A = 1.5406
F64 = torch.float64


@pytest.fixture(scope="module")
def ysz():
    return load_crystal("YSZ")


@pytest.fixture(scope="module")
def ysz400(ysz):
    return reflection(ysz, (4, 0, 0), CU_KA1_A)


def _reflection_kwargs(r, chi_0=None, chi_h=None):
    chi_h = r.chi_h if chi_h is None else chi_h
    return dict(
        bragg_angle_rad=r.bragg_angle_rad,
        wavelength_A=r.wavelength_A,
        chi_0=r.chi_0 if chi_0 is None else chi_0,
        chi_h=chi_h,
        chi_hbar=chi_h,
    )


def _substrate_curve(r, dtheta, **overrides):
    """R(Δθ) of the bare substrate (no layer)."""
    zero = torch.zeros(1, 1, dtype=F64)
    y = recursive_amplitude(
        dtheta,
        zero,
        torch.ones(1, 1, dtype=F64),
        torch.zeros(1, dtype=F64),
        **_reflection_kwargs(r, **overrides),
    )
    return (y.abs() ** 2)[0].numpy()


def _fwhm(x, y):
    above = x[y >= y.max() / 2]
    return above.max() - above.min()


# ------------------------------------------------------------------------- crystal data
def test_ysz_400_structure_factor_and_susceptibility(ysz, ysz400):
    """9.5 mol% Y2O3 in ZrO2 (the paper's composition): Zr 0.8265 + Y 0.1735 per cation
    site, 0.9566 of the O sites filled; F_400 and χ_400 at Cu Kα1 as expected."""
    x = 0.095
    cation = sum(s.occupancy for s in ysz.sites if s.element in ("Zr", "Y"))
    oxygen = sum(s.occupancy for s in ysz.sites if s.element == "O")
    assert cation == pytest.approx(4.0, abs=1e-4)  # 4 cation sites per cell, all filled
    assert oxygen == pytest.approx(8 * (2 + x) / (2 * (1 + x)), abs=1e-4)
    r = ysz400
    assert r.f_h.real == pytest.approx(118.5, abs=0.2)
    assert r.f_h.imag == pytest.approx(9.0, abs=0.1)
    assert r.chi_h.real == pytest.approx(-1.85e-5, rel=0.01)
    assert r.chi_h.imag == pytest.approx(-1.40e-6, rel=0.02)
    assert r.chi_hbar == pytest.approx(r.chi_h)  # centrosymmetric
    assert r.chi_0.imag < 0 and abs(r.chi_0) > abs(r.chi_h)  # absorption, forward scattering
    assert r.two_theta_bragg_deg == pytest.approx(73.572, abs=0.002)


def test_lattice_geometry_of_a_hexagonal_cell():
    lat = Lattice(3.0, 3.0, 5.0, 90, 90, 120)
    assert lat.volume_A3 == pytest.approx(3.0 * 3.0 * 5.0 * math.sin(math.radians(120)))
    assert lat.d_spacing_A((0, 0, 2)) == pytest.approx(2.5)
    assert lat.d_spacing_A((1, 0, 0)) == pytest.approx(3.0 * math.sqrt(3) / 2)


def test_silicon_400_bragg_angle_and_darwin_width():
    r = reflection(load_crystal("Si"), (4, 0, 0), CU_KA1_A)
    assert r.d_spacing_A == pytest.approx(5.43102 / 4)
    assert math.sin(r.bragg_angle_rad) == pytest.approx(CU_KA1_A / (2 * r.d_spacing_A))
    # σ Darwin width of Si 400 at Cu Kα1 is ~3.6 arcsec (textbook value)
    assert math.degrees(r.darwin_width_rad) * 3600 == pytest.approx(3.65, abs=0.1)


def test_crystal_errors_name_the_problem(ysz):
    with pytest.raises(CrystalError, match=r"\(1, 0, 0\).*forbidden"):
        reflection(ysz, (1, 0, 0), CU_KA1_A)
    with pytest.raises(CrystalError, match="λ < 2d"):
        reflection(ysz, (4, 0, 0), 3.0)
    good = {"name": "x", "lattice": {"a": 4.0}, "sites": [{"element": "Fe", "position": [0, 0, 0]}]}
    with pytest.raises(CrystalError, match=r"sites\[0\].*'Xx'"):
        crystal_from_mapping({**good, "sites": [{"element": "Xx", "position": [0, 0, 0]}]})
    with pytest.raises(CrystalError, match=r"lattice.a_A: expected a length > 0"):
        crystal_from_mapping({**good, "lattice": {"a": -1}})
    with pytest.raises(CrystalError, match="unknown keys"):
        crystal_from_mapping({**good, "spacegroup": "Fm-3m"})
    with pytest.raises(CrystalError, match="duplicate"):
        twin = {**good["sites"][0], "position": [0.5, 0.5, 0.5]}
        crystal_from_mapping({**good, "centring": "I", "sites": [good["sites"][0], twin]})


# ------------------------------------------------------------------------- profiles
def test_bspline_basis_conventions():
    """Partition of unity, RaDMaX's values at the interface and at the surface."""
    u = np.linspace(0, 1, 101)
    m = bspline_design_matrix(6, u)
    assert m.shape == (101, 9)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(m[0, :3], [1 / 6, 2 / 3, 1 / 6], atol=1e-12)  # interface
    np.testing.assert_allclose(m[-1, -3:], [1 / 6, 2 / 3, 1 / 6], atol=1e-12)  # surface
    with pytest.raises(ProfileError, match="n_weights: expected an integer >= 3"):
        bspline_design_matrix(2, u)


def test_profiles_vanish_at_the_interface_and_read_surface_first():
    w = torch.tensor([[0.3, 0.9, 1.0, 0.7, 0.5, 0.2]], dtype=F64)
    basis = slice_basis(6, 60, "surface_edge")
    e = strain_profile(basis, w, torch.tensor([0.02], dtype=F64))[0]
    # slice 0 is the surface: (w4 + 4 w5 + w6)/6 there; the deepest slice is next to the interface
    assert e[0].item() == pytest.approx(0.02 * (0.7 + 4 * 0.5 + 0.2) / 6)
    assert abs(e[-1].item()) < 1e-4 * abs(e).max().item()
    heights = slice_heights_fraction(60, "midpoint")
    assert heights[0] == pytest.approx(1 - 0.5 / 60) and heights[-1] == pytest.approx(0.5 / 60)
    shape = e[None, :] / 0.02
    dw = dw_from_strain(shape, torch.tensor([0.05], dtype=F64))[0]
    assert dw.min().item() == pytest.approx(0.05)
    assert dw[-1].item() == pytest.approx(1.0, abs=1e-6)
    assert int(dw.argmin()) == int((shape[0] ** 2).argmax())
    assert torch.all(
        dw_from_strain(torch.zeros(1, 5, dtype=F64), torch.tensor([0.1], dtype=F64)) == 1
    )
    dws = dw_spline(basis, torch.full((1, 6), 0.5, dtype=F64))[0]
    assert dws[-1].item() == pytest.approx(1.0, abs=1e-3) and dws[0].item() == pytest.approx(0.5)


# ------------------------------------------------------------------------- dynamical theory
def test_bare_substrate_has_the_darwin_width(ysz400):
    """Without absorption the curve is Darwin's: R = 1 over 2|χ_h|/sin 2θ_B centred on the
    refraction shift −Re χ_0/sin 2θ_B, FWHM 3/(2√2) times that width.  With absorption
    (YSZ, Si) the FWHM stays within a few % of the Darwin width and the peak near 1."""
    r = ysz400
    w = r.darwin_width_rad
    centre = -r.chi_0.real / math.sin(2 * r.bragg_angle_rad)
    d = np.linspace(centre - 3 * w, centre + 3 * w, 30001)
    dtheta = torch.tensor(d, dtype=F64)
    real = dict(chi_0=complex(r.chi_0.real, 0), chi_h=complex(r.chi_h.real, 0))
    w_real = 2 * abs(r.chi_h.real) / math.sin(2 * r.bragg_angle_rad)
    ideal = _substrate_curve(r, dtheta, **real)
    plateau = d[ideal > 1 - 1e-9]
    assert plateau.max() - plateau.min() == pytest.approx(w_real, rel=1e-3)
    assert (plateau.max() + plateau.min()) / 2 == pytest.approx(centre, rel=1e-3)
    assert _fwhm(d, ideal) == pytest.approx(3 / (2 * math.sqrt(2)) * w_real, rel=1e-3)
    absorbing = _substrate_curve(r, dtheta)
    assert _fwhm(d, absorbing) == pytest.approx(w, rel=0.05)
    assert 0.97 < absorbing.max() < 1.0
    si = reflection(load_crystal("Si"), (4, 0, 0), CU_KA1_A)
    ds = np.linspace(-5 * si.darwin_width_rad, 5 * si.darwin_width_rad, 20001)
    r_si = _substrate_curve(si, torch.tensor(ds, dtype=F64))
    assert _fwhm(ds, r_si) == pytest.approx(si.darwin_width_rad, rel=0.05)
    assert 0.99 < r_si.max() < 1.0


def test_thick_free_standing_crystal_becomes_the_substrate(ysz400):
    """A perfect slab of 1 mm (a single slice: no overflow) reflects like the semi-infinite
    substrate; a 1 µm slab does not.  (π polarisation: in σ, Im χ_h = Im χ_0 for YSZ 400, so
    at the low-angle edge of the total-reflection range absorption cancels — the Borrmann
    effect — and the wave field reaches deeper than any finite slab.)"""
    r = ysz400
    d = torch.linspace(-2e-4, 2e-4, 801, dtype=F64)
    kw = _reflection_kwargs(r)
    kw["polarization_factor"] = abs(math.cos(2 * r.bragg_angle_rad))
    zero, one = torch.zeros(1, 1, dtype=F64), torch.ones(1, 1, dtype=F64)
    sub = recursive_amplitude(d, zero, one, torch.zeros(1, dtype=F64), **kw)
    thick = recursive_amplitude(d, zero, one, torch.tensor([1e7], dtype=F64), substrate=False, **kw)
    thin = recursive_amplitude(d, zero, one, torch.tensor([1e4], dtype=F64), substrate=False, **kw)
    assert torch.isfinite(thick).all()
    assert (thick - sub).abs().max().item() < 1e-9
    assert (thin - sub).abs().max().item() > 1e-2


def test_thin_weakly_strained_layer_is_kinematic(ysz400):
    """A 500 Å layer (|Y|² ≲ 3e-4) with a strain profile: the dynamical reflectivity equals
    the kinematic sum over slices within 0.2 % wherever it exceeds 1e-3 of its maximum."""
    r = ysz400
    d = torch.linspace(-0.02, 0.004, 3001, dtype=F64)
    w = torch.tensor([[0.2, 0.6, 1.0, 0.8, 0.5, 0.3]], dtype=F64)
    e = strain_profile(slice_basis(6, 40), w, torch.tensor([0.01], dtype=F64))
    dw = torch.full_like(e, 0.9)
    t = torch.tensor([500.0 / 40], dtype=F64)
    kw = _reflection_kwargs(r)
    dyn = recursive_amplitude(d, e, dw, t, substrate=False, **kw).abs() ** 2
    kw.pop("chi_hbar")
    kin = kinematic_amplitude(d, e, dw, t, **kw).abs() ** 2
    shown = dyn > 1e-3 * dyn.max()
    assert ((kin - dyn).abs() / dyn)[shown].max().item() < 2e-3
    # a 5000 Å layer is no longer kinematic at the 0.2 % level
    dyn10 = recursive_amplitude(d, e, dw, 10 * t, substrate=False, **_reflection_kwargs(r))
    kin10 = kinematic_amplitude(d, e, dw, 10 * t, **kw)
    assert ((kin10.abs() - dyn10.abs()) / dyn10.abs()).abs().max().item() > 2e-3


def test_strained_layer_scatters_at_its_own_bragg_angle(ysz400):
    """A uniformly strained (e = 0.5 %) 2000 Å slab peaks at θ_B − e tan θ_B (+ refraction)."""
    r = ysz400
    strain = 0.005
    d = torch.linspace(-0.01, 0.002, 12001, dtype=F64)
    e = torch.full((1, 20), strain, dtype=F64)
    y = recursive_amplitude(
        d,
        e,
        torch.ones_like(e),
        torch.tensor([100.0], dtype=F64),
        substrate=False,
        **_reflection_kwargs(r),
    )
    peak = d[int((y.abs() ** 2).argmax())].item()
    expected = -strain * math.tan(r.bragg_angle_rad) - r.chi_0.real / math.sin(
        2 * r.bragg_angle_rad
    )
    assert peak == pytest.approx(expected, abs=1.5e-6)  # grid step 1e-6 rad


def _small_simulator(**overrides):
    ysz = load_crystal("YSZ")
    settings = dict(
        crystal=ysz,
        hkl=(4, 0, 0),
        wavelength_A=CU_KA1_A,
        angles=np.linspace(72.9, 73.7, 41),
        n_slices=8,
        n_strain_weights=4,
    )
    settings.update(overrides)
    return XRDSimulator(XRDSetup(**settings))


def _small_params(sim, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(batch):
        weights = (0.3 + 0.7 * torch.rand(sim.setup.n_strain_weights, generator=g)).tolist()
        dw = [0.3] if sim.setup.dw_model == "strain_coupled" else [0.8] * sim.setup.n_dw_weights
        rows.append(weights + [0.006, 1500.0] + dw + [0.02, 1e-4, 1.0])
    return torch.tensor(rows, dtype=F64)


def test_reversing_the_profile_in_depth_changes_the_curve():
    sim = _small_simulator()
    p = _small_params(sim, batch=1)
    p_rev = p.clone()
    p_rev[0, :4] = p[0, :4].flip(0)
    a, b = sim.simulate(p), sim.simulate(p_rev)
    assert (torch.log10(a) - torch.log10(b)).abs().max().item() > 0.1


def test_gradients_match_finite_differences():
    """float64 autograd against central differences for every parameter (both DW models)."""
    for dw_model in ("strain_coupled", "spline"):
        sim = _small_simulator(dw_model=dw_model, n_dw_weights=4, margin_deg=0.01)
        p = _small_params(sim, batch=2).requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda x, sim=sim: torch.log(sim.simulate(x, check=False)), (p,), eps=1e-6, atol=1e-5
        )


def test_float32_gradients_are_finite():
    sim = XRDSimulator(_small_simulator().setup, dtype=torch.float32)
    p = _small_params(sim, batch=4).float().requires_grad_(True)
    sim.simulate(p).log().sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_a_sample_does_not_depend_on_its_batch():
    sim = _small_simulator(margin_deg=0.02)
    chunked = XRDSimulator(sim.setup, batch_chunk=2)
    p = _small_params(sim, batch=5)
    torch.testing.assert_close(sim.pack(sim.unpack(p)), p, rtol=0, atol=0)
    together = sim.simulate(p)
    torch.testing.assert_close(chunked.simulate(p), together, rtol=1e-12, atol=0)
    for i in range(5):
        alone = sim.simulate(p[i : i + 1])
        torch.testing.assert_close(alone[0], together[i], rtol=1e-12, atol=0)


@pytest.mark.gpu
def test_cuda_gives_the_cpu_result():
    cpu = _small_simulator(margin_deg=0.02)
    gpu = XRDSimulator(cpu.setup, device="cuda")
    p = _small_params(cpu, batch=4)
    torch.testing.assert_close(gpu.simulate(p.cuda()).cpu(), cpu.simulate(p), rtol=1e-9, atol=0)


def test_angle_axes_describe_the_same_curve():
    """The same θ points given as 2θ, as θ, and as ΔQ/Q_B give the same intensities (the
    instrument width is in θ degrees on every axis)."""
    two_theta = np.linspace(72.9, 73.7, 41)
    sim2 = _small_simulator(angles=two_theta)
    simt = _small_simulator(angles=two_theta / 2, axis="theta_deg")
    p = _small_params(sim2)
    torch.testing.assert_close(sim2.simulate(p), simt.simulate(p), rtol=1e-10, atol=0)
    theta_b = sim2.reflection.bragg_angle_rad
    x = np.linspace(-0.008, 0.002, 41)
    simq = _small_simulator(angles=x, axis="dq_over_q")
    np.testing.assert_allclose(np.sin(simq.theta_rad), (1 + x) * math.sin(theta_b), rtol=1e-14)
    params = simq.unpack(p)
    prof = simq.profiles(params)
    y = recursive_amplitude(
        torch.tensor(simq.theta_rad - theta_b, dtype=F64),
        prof.strain,
        prof.dw,
        params.thickness_A / simq.setup.n_slices,
        **_reflection_kwargs(simq.reflection),
    )
    torch.testing.assert_close(simq.coherent_reflectivity(params), y.abs() ** 2)


def test_polarization_factor_narrows_the_pi_curve(ysz400):
    """π polarisation scales the Darwin width by C = |cos 2θ_B| (exactly without absorption,
    within a few % with it); unpolarised is the mean of σ and π."""
    r = ysz400
    c = abs(math.cos(2 * r.bragg_angle_rad))
    d = np.linspace(-2e-4, 2.5e-4, 9001)
    real = dict(chi_0=complex(r.chi_0.real, 0), chi_h=complex(r.chi_h.real, 0))
    width = {}
    for name, factor in (("sigma", 1.0), ("pi", c)):
        zero = torch.zeros(1, 1, dtype=F64)
        y = recursive_amplitude(
            torch.tensor(d, dtype=F64),
            zero,
            torch.ones_like(zero),
            torch.zeros(1, dtype=F64),
            polarization_factor=factor,
            **_reflection_kwargs(r, **real),
        )
        width[name] = _fwhm(d, (y.abs() ** 2)[0].numpy())
    assert width["pi"] / width["sigma"] == pytest.approx(c, rel=2e-3)
    angles = 2 * np.degrees(r.bragg_angle_rad + d)
    curves = {}
    for pol in ("sigma", "pi", "unpolarized"):
        sim = _small_simulator(angles=angles, polarization=pol, normalization="none")
        p = _small_params(sim, batch=1)
        p[0, 4], p[0, 6] = 0.0, 1.0  # no strain, DW = 1: the bare substrate
        p[0, -3:] = torch.tensor([0.0, 0.0, 1.0])
        curves[pol] = sim.simulate(p)[0].numpy()
    assert _fwhm(angles, curves["pi"]) / _fwhm(angles, curves["sigma"]) == pytest.approx(
        c, rel=0.08
    )
    np.testing.assert_allclose(curves["unpolarized"], (curves["sigma"] + curves["pi"]) / 2)


def test_instrument_kernel_has_the_requested_width():
    for eta in (0.0, 0.5, 1.0):
        k = instrument_kernel(401, torch.tensor([12.0, 30.0], dtype=F64), eta)
        assert torch.allclose(k.sum(dim=1), torch.ones(2, dtype=F64))
        offsets = np.arange(-400, 401)
        assert _fwhm(offsets, k[0].numpy()) == pytest.approx(12.0, abs=1.0)
        assert _fwhm(offsets, k[1].numpy()) == pytest.approx(30.0, abs=1.0)


def test_bad_settings_and_parameters_are_named():
    sim = _small_simulator()
    with pytest.raises(XRDSetupError, match="angles: expected a uniform increasing grid"):
        _small_simulator(angles=np.array([72.9, 73.0, 73.2]))
    with pytest.raises(XRDSetupError, match=r"params: expected shape \[B, 10\]"):
        sim.simulate(torch.zeros(2, 9, dtype=F64))
    p = _small_params(sim, batch=2)
    p[1, 5] = -10.0
    with pytest.raises(XRDSetupError, match=r"thickness_A: expected > 0 Å, got -10.0 \(sample 1\)"):
        sim.simulate(p)
    p = _small_params(sim, batch=2)
    p[0, 6] = 0.0
    with pytest.raises(XRDSetupError, match=r"dw_min: expected in \(0, 1\]"):
        sim.simulate(p)
    with pytest.raises(XRDSetupError, match="polarization: expected one of"):
        _small_simulator(polarization="circular")


# ------------------------------------------------------------------------- validation
def _ysz_measurement():
    shared = shared_dir()
    folder = None if shared is None else shared / "real" / "xrd_radmax_ysz"
    if folder is None or not folder.is_dir():
        pytest.skip("shared/real/xrd_radmax_ysz not found: set SPECINV_SHARED")
    two_theta, counts = np.loadtxt(folder / "YSZ-XRD.txt", unpack=True)
    strain_w = np.loadtxt(folder / "input_strain_coeff.txt")
    dw_w = np.loadtxt(folder / "input_DW_coeff.txt")
    return two_theta, counts, strain_w, dw_w


def _ysz_rms(strain_w, dw_w, two_theta, counts, **overrides):
    """rms of log10 I over all points, both curves normalised to their maximum (RaDMaX)."""
    settings = dict(
        crystal=load_crystal("YSZ"),
        hkl=(4, 0, 0),
        wavelength_A=CU_KA1_A,
        angles=two_theta,
        axis="two_theta_deg",
        n_slices=60,
        n_strain_weights=6,
        dw_model="spline",
        n_dw_weights=6,
        sampling="surface_edge",
        pv_eta=1e-5,
        normalization="max",
    )
    settings.update(overrides)
    sim = XRDSimulator(XRDSetup(**settings))
    # RaDMaX: weights in %, t = 1998 Å, FWHM 0.013° of θ, background 1e-5, peak scaled to 1
    row = list(strain_w) + [0.01, 1998.0] + list(dw_w) + [0.013, 1e-5, 1.0]
    calc = sim.simulate(torch.tensor([row], dtype=F64))[0].numpy()
    measured = counts / counts.max()
    return float(np.sqrt(np.mean((np.log10(calc) - np.log10(measured)) ** 2)))


def test_radmax_weights_reproduce_the_measured_ysz_curve():
    """RaDMaX's fitted weights for ion-irradiated YSZ (400, Cu Kα1; 6 + 6 B-spline weights,
    1998 Å in 60 slices) reproduce the measured curve: rms Δlog10 I <= 0.15 over the 501
    points.  Reversing the strain profile in depth, or dropping the layer, does not."""
    two_theta, counts, strain_w, dw_w = _ysz_measurement()
    assert two_theta.size == 501 and counts.min() > 0
    rms = _ysz_rms(strain_w, dw_w, two_theta, counts)
    assert rms <= 0.15
    assert _ysz_rms(strain_w, dw_w, two_theta, counts, margin_deg=0.05) <= 0.15
    assert _ysz_rms(strain_w[::-1], dw_w, two_theta, counts) > 2 * rms
    assert _ysz_rms(0 * strain_w, 0 * dw_w + 1, two_theta, counts) > 3 * rms
