"""Range/straggling tables against closed forms (cubic Hermite on a 50-per-decade ln E grid:
about 1e-7 relative accuracy)."""

from __future__ import annotations

import math

import pytest
import torch

from specinv.physics.rbs.tables import LayerTables

U0, H, G = math.log(20.0), math.log(10.0) / 50, 120  # 20 keV … ~4 MeV


def tables(stopping_of_energy, omega2=0.0):
    energy = torch.exp(U0 + H * torch.arange(G, dtype=torch.float64))
    stop = stopping_of_energy(energy)[None]
    return LayerTables.build(stop, torch.tensor([omega2], dtype=torch.float64), U0, H)


def test_constant_stopping_crossing_is_linear():
    tab = tables(lambda e: torch.full_like(e, 0.05), omega2=2e-3)
    row = torch.zeros(5, dtype=torch.long)
    e_in = torch.tensor([3000.0, 2500.0, 1000.0, 400.0, 100.0], dtype=torch.float64)
    path = torch.tensor([1000.0, 2000.0, 5000.0, 100.0, 10.0], dtype=torch.float64)
    var = torch.full_like(e_in, 4.0)
    u, v, ratio, s_in, inside = tab.cross(row, torch.log(e_in), var, path)
    assert inside.all()
    assert torch.allclose(torch.exp(u), e_in - 0.05 * path, rtol=1e-6)
    assert torch.allclose(ratio, torch.ones_like(ratio), rtol=1e-6)
    # Bohr: ω² per TFU of path (the increment is a difference of integrals: ~1e-6 accurate)
    assert torch.allclose(v - var, 2e-3 * path, rtol=1e-5)


def test_power_law_stopping_range_and_non_statistical_broadening():
    # S = c E^a  =>  R(E) = E^(1−a) / (c (1−a)) + const; a spread scales with S_out/S_in
    c, a = 0.2, -0.5
    tab = tables(lambda e: c * e**a)
    e_in = torch.tensor([2000.0, 800.0], dtype=torch.float64)
    path = torch.tensor([300.0, 40.0], dtype=torch.float64)
    u, v, ratio, _, inside = tab.cross(
        torch.zeros(2, dtype=torch.long), torch.log(e_in), torch.ones(2, dtype=torch.float64), path
    )
    e_out = (e_in ** (1 - a) - c * (1 - a) * path) ** (1 / (1 - a))
    assert torch.allclose(torch.exp(u), e_out, rtol=1e-7)
    assert torch.allclose(ratio, (e_out / e_in) ** a, rtol=1e-6)
    assert torch.allclose(v, ratio**2, rtol=1e-6)


def test_stopped_particles_are_flagged():
    tab = tables(lambda e: torch.full_like(e, 0.05))
    u, _, _, _, inside = tab.cross(
        torch.zeros(2, dtype=torch.long),
        torch.log(torch.tensor([100.0, 100.0], dtype=torch.float64)),
        torch.zeros(2, dtype=torch.float64),
        torch.tensor([1000.0, 10000.0], dtype=torch.float64),
    )
    assert inside.tolist() == [True, False]
    assert math.exp(float(u[0])) == pytest.approx(50.0, rel=1e-6)


def test_inverse_look_up_inverts_the_table_itself():
    """invert(R(u)) gives back u and the table's (R, S, T) there far below the O(h⁴) of the
    cubic inverse alone (energy losses in thin layers are differences of ranges)."""
    tab = tables(lambda e: 0.3 * e**-0.4 + 1e-4 * e**0.5, omega2=1e-3)
    u = torch.linspace(math.log(25.0), math.log(3500.0), 301, dtype=torch.float64)
    row = torch.zeros_like(u, dtype=torch.long)
    forward = tab.lookup(row, u)
    back, values = tab.invert(row, forward[..., 0])
    assert (back - u).abs().max() < 1e-11  # the cubic inverse alone: ~2e-7
    r, s, t = (values[..., k] / forward[..., k] - 1.0 for k in range(3))
    assert r.abs().max() < 1e-12 and t.abs().max() < 1e-10
    assert s.abs().max() < 1e-6  # S is not moved by the Newton step
