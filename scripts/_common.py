"""Shared set-up of the Snakemake script adapters: log file, threads, allocator, the plan;
and how a job ends on an error the user can act on."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn


def start(snakemake):
    """Send stdout/stderr to the rule's log, set torch's threads and keep freed memory for
    reuse (:mod:`specinv.memory`); return the run's :class:`specinv.plan.WorkflowPlan`."""
    log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 (lives until exit)
    sys.stdout = sys.stderr = log
    logging.basicConfig(
        stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    # Lightning, when imported before this, logs to the terminal: send it to the log too
    for name in ("pytorch_lightning", "lightning_fabric"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log)
    # and its advertising tips (e.g. about litlogger) are not for job logs
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "Tip:" not in record.getMessage()
    )
    from specinv.memory import keep_freed_memory
    from specinv.threads import configure_threads

    configure_threads(max(1, snakemake.threads))
    keep_freed_memory()  # reuse freed memory instead of faulting in fresh pages
    from specinv.plan import workflow_plan

    return workflow_plan(snakemake.config)


def exit_on_error(error: Exception) -> NoReturn:
    """End the job on an error the user can act on (a :class:`specinv.config.ConfigError`,
    e.g. a diverged training): its message as one line in the job's log and on the
    workflow's terminal, without a traceback; exit status 1."""
    logging.error("%s", error)
    print(f"error: {error}", file=sys.__stderr__, flush=True)
    sys.exit(1)
