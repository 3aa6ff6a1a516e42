"""Checking requested torch devices before any work starts."""

from __future__ import annotations

import torch

from .config.errors import ConfigError


def check_device(name: str, key: str) -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:1``, ``gpu`` for ``cuda``, ...) if
    this machine has it.

    Raises:
        ConfigError: naming ``key`` when the text is not a device, or names a CUDA device that
            this machine (or this build of torch) does not have.
    """
    text = str(name).strip()
    try:
        device = torch.device("cuda" if text == "gpu" else text)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"{key}: expected a torch device (cpu, cuda, cuda:N), got {name!r}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this build of torch has no CUDA support"
                if torch.version.cuda is None
                else "no CUDA device is visible on this machine"
            )
            raise ConfigError(
                f"{key}: {name!r} requested, but {why} (torch {torch.__version__}); use cpu, "
                "or run where a GPU is (e.g. the slurm profile's gpu partition)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{key}: {name!r} requested, but this machine has {count} CUDA device(s) "
                f"(cuda:0 … cuda:{count - 1})"
            )
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"{key}: expected cpu or cuda, got {name!r}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}: {name!r} requested, but MPS is not available here")
    return device
