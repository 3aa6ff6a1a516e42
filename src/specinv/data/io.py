"""Reading and writing datasets: NetCDF4 through xarray (h5netcdf engine), atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..fileio import atomic_path

ENGINE = "h5netcdf"


def write_dataset(ds: xr.Dataset, path: str | Path, complevel: int = 1) -> Path:
    """Write ``ds`` to ``path`` (temporary file + rename: never a partial file).

    Arrays with two or more dimensions are chunked along their first dimension and
    compressed (shuffle + zlib), which shrinks mostly-zero count spectra several-fold.
    The bytes depend only on the content: equal datasets give identical files.
    """
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}  # encodings read from another file (chunk sizes...) do not apply
    encoding = {}
    for name, var in ds.variables.items():
        if var.ndim >= 2 and var.dtype.kind in "iuf":
            chunks = (
                min(var.shape[0], max(1, 2**20 // max(1, int(np.prod(var.shape[1:]))))),
                *var.shape[1:],
            )
            encoding[name] = {
                "zlib": True,
                "complevel": complevel,
                "shuffle": True,
                "chunksizes": chunks,
            }
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=ENGINE, encoding=encoding)
    return path


def read_dataset(path: str | Path) -> xr.Dataset:
    """Load a dataset fully into memory (the file is closed afterwards)."""
    try:
        return xr.load_dataset(path, engine=ENGINE)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such dataset file") from None
    except OSError as exc:
        raise OSError(f"{path}: not a readable NetCDF4/HDF5 dataset ({exc})") from None
