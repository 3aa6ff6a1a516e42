"""X-ray diffraction (Boulle & Debelle 2023): strain and damage depth profiles from
diffraction curves.  The technique: :class:`XRDTechnique`; the paper's random strain
profiles: :mod:`.sampling`; readers of measured curves: :mod:`.curves`."""

from .technique import XRDTechnique

__all__ = ["XRDTechnique"]
