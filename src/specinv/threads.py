"""Process-level thread settings for CPU work on machines that other jobs share.

Two things make the batched simulator's times erratic on a shared machine (a cluster node,
a workstation running a training beside a fit; benchmarks/RESULTS.md):

* **Spin-waiting.** PyTorch's CPU build on Linux uses GNU OpenMP, whose idle worker
  threads spin for 300 000 rounds after each parallel region before they sleep.  Beside
  another CPU-bound process they steal its core, and each of the simulator's many
  operations then waits for a thread that is not running: on a 2-core machine with one
  busy process, a batch of 15-parameter spectra took 4.4–6.3 ms per spectrum with two
  threads instead of 0.5 ms with one.  Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``)
  fixes that but costs a wake-up per operation: on the idle machine two threads were then
  no faster than one.  A short spin of 10 000 rounds keeps the idle speed (0.29 ms per
  spectrum, as with the default) and, beside a busy process, steady times (1.05–1.14 ms).
  :func:`limit_spin_waiting` sets ``GOMP_SPINCOUNT=10000``.  OpenMP reads it when it is
  loaded, i.e. when torch is imported, so it must be called before that; a wait policy or
  spin count the user set is kept.
* **Too many threads.** By default torch starts one thread per core of the machine, not
  per core of the job's allocation.  :func:`allocated_cpus` is the job's share: SLURM's
  ``SLURM_CPUS_PER_TASK``, else the CPUs this process may run on (its affinity mask, which
  ``taskset``, cgroups-aware launchers and batch systems set).

Like :mod:`specinv.memory` these change the whole process, so the library never calls
them by itself: entry points do (the ``specinv`` command, the workflow, whose jobs set
torch's threads to the rule's ``threads``, and the benchmarks), and so can a user's own
script.
"""

from __future__ import annotations

import os
import sys

from .config.errors import ConfigError

#: GNU OpenMP's spin count after a parallel region (its default: 300 000).
SPIN_COUNT = "GOMP_SPINCOUNT"
SHORT_SPIN = "10000"
#: A user's own choice of waiting, kept as it is.
WAIT_SETTINGS = ("OMP_WAIT_POLICY", SPIN_COUNT)


def limit_spin_waiting(environ: dict[str, str] | None = None) -> str | None:
    """Set ``GOMP_SPINCOUNT=10000`` unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set.

    Returns the spin count set, or None when the user's setting was kept.  Call it before
    torch is imported; afterwards it only affects child processes (a warning says so on
    stderr).
    """
    env = os.environ if environ is None else environ
    if any(env.get(name, "").strip() for name in WAIT_SETTINGS):
        return None
    env[SPIN_COUNT] = SHORT_SPIN
    if environ is None and "torch" in sys.modules:
        print(
            "specinv.threads: torch was imported before OpenMP's spin count was set; "
            "it applies to child processes only",
            file=sys.stderr,
        )
    return SHORT_SPIN


def allocated_cpus(environ: dict[str, str] | None = None) -> int:
    """CPUs allocated to this process: ``SLURM_CPUS_PER_TASK`` inside a SLURM job, else the
    size of the process's CPU affinity mask (all cores where there is none)."""
    env = os.environ if environ is None else environ
    value = env.get("SLURM_CPUS_PER_TASK", "")
    if value.strip():
        cpus = int(value) if value.strip().isdigit() else 0
        if cpus < 1:
            raise ConfigError(
                f"environment variable SLURM_CPUS_PER_TASK: expected a positive integer, "
                f"got {value!r}"
            )
        return cpus
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (default: :func:`allocated_cpus`) and
    return the number set."""
    import torch

    n = allocated_cpus() if threads is None else threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"threads: expected a positive integer, got {threads!r}")
    torch.set_num_threads(n)
    return n
