"""Forward models (simulators) of the techniques specinv supports."""
