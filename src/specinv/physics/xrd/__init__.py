"""X-ray diffraction (XRD) forward model."""
