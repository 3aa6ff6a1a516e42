"""Model-based quantification of simulated EELS spectra of known composition."""

from __future__ import annotations

import numpy as np
import pytest

from specinv.config.schema import validate
from specinv.physics.eels import EELSSimulator, SimulatorSettings
from specinv.techniques import technique_class
from specinv.techniques.eels.quantify import quantify

LOW_LOSS = ("zlp_fwhm_eV", "plasmon_eV", "plasmon_fwhm_eV", "n_plasmons", "thickness_over_mfp")


@pytest.fixture(scope="module")
def technique():
    section: dict = {}
    cls = technique_class("eels")
    validate(section, cls.config_schema, "eels")
    return cls.from_config(section)


def simulated(technique, sim, composition, rng, *, start, end, quiet=False, solid=False):
    """A spectrum of ``composition`` under conditions drawn from the technique's prior
    (quiet: no fine structure, no instrumental shift; solid: atomic diameters of real
    solids, 150-250 pm, instead of the paper's 25-250 pm)."""
    p = technique.sample(rng.random((1, technique.n_uniforms)))[0]
    p[: sim.n_elements] = 0.0
    for symbol, amount in composition.items():
        p[sim.symbols.index(symbol)] = amount
    p[sim.column["start_eV"]], p[sim.column["end_eV"]] = start, end
    p[sim.column["log10_background"]] = 6
    if solid:
        p[sim.column["atomic_diameter_pm"]] = rng.uniform(150.0, 250.0)
    if quiet:
        p[sim.column["fine_structure_scale"]] = 1e-9
        p[sim.column["instrumental_shift_eV"]] = 0
    return p, sim.simulate(p[None])[0].numpy()


def quantified(sim, p, counts, elements, **kw):
    return quantify(
        counts,
        elements,
        beam_energy_kV=p[sim.column["beam_energy_kV"]],
        convergence_mrad=p[sim.column["convergence_mrad"]],
        collection_mrad=p[sim.column["collection_mrad"]],
        low_loss={n: p[sim.column[n]] for n in LOW_LOSS},
        **kw,
    )


@pytest.mark.parametrize("composition", [{"B": 1, "N": 1}, {"B": 1, "O": 2, "Al": 1}])
def test_the_model_recovers_an_exact_spectrum(technique, composition):
    """Without noise, fine structure (and white lines: none of these elements has them) or
    shifts the model is the simulator's: the atomic fractions come back to 1 %."""
    sim = EELSSimulator(SimulatorSettings(chemical_shift_eV=0))
    rng = np.random.default_rng(5)
    p, counts = simulated(technique, sim, composition, rng, start=150, end=2200, quiet=True)
    q = quantified(sim, p, counts, list(composition))
    true = np.array(list(composition.values()), float)
    np.testing.assert_allclose(q.concentrations, true / true.sum(), rtol=0.01)
    assert q.chi2_reduced < 1e-3 and np.array_equal(q.shifts_eV, np.zeros(len(composition)))


@pytest.mark.parametrize(
    "composition, start, end",
    [
        ({"B": 1, "N": 1}, 150, 1000),  # B K 188 eV, N K 401 eV
        ({"C": 1, "Fe": 2}, 200, 1500),  # C K 284 eV, Fe L 708 eV
        ({"C": 1, "O": 1, "Fe": 1}, 200, 1500),  # C K, O K 532 eV, Fe L 708 eV
    ],
)
def test_well_separated_edges_are_quantified_within_ten_percent(technique, composition, start, end):
    """The whole simulator: chemical and instrumental shifts, fine structure and white
    lines, plural scattering, Poisson noise (10^6 background counts at the start), the other
    conditions from the paper's ranges but atomic diameters of real solids (150-250 pm: the
    paper's smallest, 25 pm, give fine-structure peaks hundreds of eV wide, which no model
    tells from the edge itself).  The edges lie further apart than the fitted fine-structure
    window (120 eV).  The median error of every element's fraction is below 10 % (2-8 %);
    spectra beyond 10 % are those of the weakest edges (jump ratios near 0.2)."""
    sim = technique.simulator
    rng = np.random.default_rng(11)
    true = np.array(list(composition.values()), float)
    true /= true.sum()
    errors = []
    for _ in range(8):
        p, expected = simulated(technique, sim, composition, rng, start=start, end=end, solid=True)
        counts = rng.poisson(expected)
        errors.append(quantified(sim, p, counts, list(composition)).concentrations / true - 1)
    errors = np.abs(np.array(errors))
    assert (np.median(errors, axis=0) < 0.10).all()
    assert (errors.max(axis=1) < 0.10).mean() >= 0.5


def test_an_element_without_an_edge_in_range_is_named(technique):
    sim = technique.simulator
    p, counts = simulated(
        technique, sim, {"O": 1}, np.random.default_rng(0), start=400, end=900, quiet=True
    )
    with pytest.raises(ValueError, match="elements: Si have no edge in the spectrum's range"):
        quantified(sim, p, counts, ["O", "Si"])
