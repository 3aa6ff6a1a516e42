"""Classical fitting of many spectra at once: the paper's Autofit (lockstep adaptive
Nelder–Mead), ML + Autofit, and batched Levenberg–Marquardt refinement through the
differentiable simulator."""

from .levenberg_marquardt import RefinementResult, refine_levenberg_marquardt
from .nelder_mead import BatchedNelderMeadResult, BatchedObjective, minimize_batched
from .problem import SpectrumFitProblem

__all__ = [
    "BatchedNelderMeadResult",
    "BatchedObjective",
    "RefinementResult",
    "SpectrumFitProblem",
    "minimize_batched",
    "refine_levenberg_marquardt",
]
