"""X-ray diffraction (Boulle & Debelle 2023): strain and damage depth profiles from
diffraction curves.  Readers of measured curves: :mod:`.curves`."""
