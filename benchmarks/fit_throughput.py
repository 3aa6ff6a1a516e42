"""Throughput of the batched fits: lockstep Nelder–Mead against one scipy fit after another,
and the batched Levenberg–Marquardt refinement.

Sample: the W/D two-layer reference setup (4He 3000 keV, 165°, 1024 channels; 4 parameters,
each uniform in [50, 5000] TFU), B spectra with Poisson noise.  Prints spectra per second of

* scipy's adaptive Nelder–Mead called once per spectrum (a few spectra; the simulator is
  called with one parameter set at a time, as a classical fit does);
* the lockstep ``minimize_batched`` over all B spectra (same algorithm and budget; checks
  that the first spectra end where scipy's fits do);
* Levenberg–Marquardt from starts within ±15 % of the truth (like an MDN start), with the
  layer-by-layer finite differences of the workflow (``RBSTechnique.partial_simulation``).

Usage::

    python benchmarks/fit_throughput.py [--spectra 500] [--evaluations-per-parameter 50]
        [--scipy-spectra 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from scipy.optimize import minimize

from specinv.evaluation import acceptance_rate
from specinv.fitting import SpectrumFitProblem, minimize_batched, refine_levenberg_marquardt
from specinv.physics.rbs import Detector, PhysicsOptions, Setup, poisson_noise
from specinv.techniques.rbs import RBSTechnique

LOW, HIGH = 50.0, 5000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spectra", type=int, default=500)
    ap.add_argument("--evaluations-per-parameter", type=int, default=50)
    ap.add_argument("--scipy-spectra", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    setup = Setup(
        ion="4He",
        beam_energy_keV=3000.0,
        scattering_deg=165.0,
        incidence_deg=0.0,
        detector=Detector(channels=1024, gain_keV_per_channel=3.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=50.0,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )
    technique = RBSTechnique(setup, [["W", "D"], ["W", "D"]], device="cpu")
    sim = technique.simulator
    d = sim.n_parameters
    rng = np.random.default_rng(0)
    truth = rng.uniform(LOW, HIGH, (args.spectra, d))
    observed = poisson_noise(sim.simulate(torch.as_tensor(truth)), seed=1).numpy()
    roi = np.zeros(observed.shape[1], dtype=bool)
    roi[int(200 / 3) :] = True  # from 200 keV up
    low, high = np.full(d, LOW), np.full(d, HIGH)
    start = np.clip(truth * rng.uniform(0.85, 1.15, truth.shape), LOW, HIGH)
    budget = args.evaluations_per_parameter * d
    print(
        f"machine: {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; {args.spectra} W/D "
        f"spectra, Nelder-Mead budget {budget} evaluations, restarts every 500"
    )

    # scipy, one spectrum after another
    n_scipy = min(args.scipy_spectra, args.spectra)
    prob = SpectrumFitProblem(sim.simulate, observed, roi, low, high)
    t0 = time.perf_counter()
    scipy_x = []
    for b in range(n_scipy):
        res = minimize(
            lambda y, b=b: prob.chi2(y[None], [b])[0],
            start[b],
            method="Nelder-Mead",
            bounds=list(zip(low, high, strict=True)),
            options={"adaptive": True, "maxfev": budget},
        )
        scipy_x.append(res.x)
    t_scipy = (time.perf_counter() - t0) / n_scipy
    print(f"scipy Nelder-Mead, one spectrum at a time: {1 / t_scipy:8.2f} spectra/s")

    prob = SpectrumFitProblem(sim.simulate, observed, roi, low, high)
    t0 = time.perf_counter()
    nm = minimize_batched(
        prob.chi2, start, bounds=(low, high), max_evaluations=budget, restart_every=500
    )
    t_nm = (time.perf_counter() - t0) / args.spectra
    same = np.array_equal(np.array(scipy_x), nm.x[:n_scipy])
    print(
        f"lockstep Nelder-Mead, {args.spectra} at once: {1 / t_nm:8.2f} spectra/s "
        f"({t_scipy / t_nm:.0f}x; {nm.n_objective_calls} simulator calls; first "
        f"{n_scipy} identical to scipy: {same}); accepted "
        f"{100 * acceptance_rate(nm.fun, prob.dof):.1f} %"
    )

    prob = SpectrumFitProblem(
        sim.simulate, observed, roi, low, high, partial=technique.partial_simulation()
    )
    t0 = time.perf_counter()
    lm = refine_levenberg_marquardt(prob, start)
    t_lm = (time.perf_counter() - t0) / args.spectra
    print(
        f"Levenberg-Marquardt, {args.spectra} at once: {1 / t_lm:8.2f} spectra/s "
        f"({t_nm / t_lm:.1f}x lockstep Nelder-Mead; {lm.n_iterations.mean():.1f} "
        f"iterations, {lm.n_simulations.mean():.1f} simulations per spectrum); accepted "
        f"{100 * acceptance_rate(lm.chi2, prob.dof):.1f} %"
    )


if __name__ == "__main__":
    main()
