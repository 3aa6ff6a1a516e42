#!/usr/bin/env python3
"""A throw-away single-node SLURM cluster on this machine, to try ``profiles/slurm`` (and
to test it) without a real cluster.

    sudo python profiles/slurm/local_cluster.py start --dir /tmp/slurm
    snakemake --workflow-profile profiles/slurm --configfile config/config.yaml
    sudo python profiles/slurm/local_cluster.py stop --dir /tmp/slurm

Needs root and Debian's (or another distribution's) ``slurmctld``, ``slurmd``,
``slurm-client`` and ``munge`` packages (``apt-get install slurmctld slurmd slurm-client
munge``); no systemd. One node with this machine's name, CPUs and (most of) its memory,
two partitions on it: ``cpu`` (the default) and ``gpu``, which declares GPUs as a generic
resource (``--gpus`` requests are scheduled there; without a real GPU the jobs run on the
CPU, as the workflow's GPU jobs do on a machine without one). No accounting database: job
states come from ``squeue`` (``slurm-status-command: squeue`` in the profile).

Everything lives in ``--dir`` (configuration, munge key and socket, state, logs) except
``/etc/slurm/slurm.conf`` and ``gres.conf``, which the SLURM commands run inside jobs read
from there: they become symbolic links into ``--dir`` and are removed by ``stop``. An
existing ``/etc/slurm/slurm.conf`` that is not such a link is never touched: ``start``
refuses instead.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ETC = Path("/etc/slurm")
DAEMONS = ("slurmd", "slurmctld", "munged")
TOOLS = ("slurmctld", "slurmd", "munged", "mungekey", "sinfo", "sbatch", "squeue")


class ClusterError(RuntimeError):
    """The cluster cannot be started or stopped here; the message says why."""


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise ClusterError("/proc/meminfo: no MemTotal line")


def slurm_conf(root: Path, host: str, cpus: int, memory_mb: int, gpus: int) -> str:
    """The cluster's slurm.conf: one node, partitions ``cpu`` (default) and ``gpu``."""
    munge_socket = root / "munge" / "munge.socket.2"
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    return f"""# single-node test cluster written by {Path(__file__).name}
ClusterName=specinv-local
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=300
GresTypes=gpu
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={memory_mb}{gres} State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} Default=NO MaxTime=INFINITE State=UP
"""


def _check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise ClusterError(
            f"missing {', '.join(missing)}: install slurmctld slurmd slurm-client munge "
            "(apt-get install slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        raise ClusterError("the SLURM and munge daemons need root: run this as root")


def _link_etc(root: Path) -> None:
    ETC.mkdir(parents=True, exist_ok=True)
    for name in ("slurm.conf", "gres.conf"):
        link = ETC / name
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise ClusterError(
                f"{link} exists and is not a link made by this script: a real SLURM "
                "configuration is not replaced; stop here"
            )
        link.symlink_to(root / name)


def _unlink_etc(root: Path) -> None:
    for name in ("slurm.conf", "gres.conf"):
        link = ETC / name
        if link.is_symlink() and Path(os.readlink(link)) == root / name:
            link.unlink()


def _wait(what: str, ready, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise ClusterError(f"{what} did not come up within {seconds:.0f} s")


def _node_state() -> str:
    """The node's state as sinfo reports it (one line per partition, the same state)."""
    r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    states = set(r.stdout.split()) if r.returncode == 0 else set()
    return states.pop() if len(states) == 1 else ""


def start(root: Path, cpus: int | None = None, memory_mb: int | None = None, gpus: int = 1):
    """Start munged, slurmctld and slurmd with their files in ``root``; return when the
    node is idle."""
    _check_tools()
    if gpus not in (0, 1):
        raise ClusterError(f"--gpus: expected 0 or 1 (a GPU on paper), got {gpus}")
    root = root.resolve()
    if (root / "slurmctld.pid").exists():
        raise ClusterError(f"{root}: a cluster already runs from here (stop it first)")
    host = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    memory_mb = memory_mb or max(500, int(0.8 * _memory_mb()))
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    munge_dir = root / "munge"
    munge_dir.mkdir(exist_ok=True)
    munge = pwd.getpwnam("munge")
    # munged refuses a socket folder that others may write to, or whose parents it
    # cannot traverse
    for path in (root, *root.parents):
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o055)
    munge_dir.chmod(0o755)
    os.chown(munge_dir, munge.pw_uid, munge.pw_gid)
    key = munge_dir / "munge.key"
    if not key.exists():
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o600)
    (root / "slurm.conf").write_text(slurm_conf(root, host, cpus, memory_mb, gpus))
    # a GPU on paper (one: /dev/null as its device file): the gpu partition schedules
    # --gpus requests
    (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/null\n" if gpus else "")
    _link_etc(root)
    subprocess.run(
        [
            "runuser",
            "-u",
            "munge",
            "--",
            "munged",
            f"--socket={munge_dir / 'munge.socket.2'}",
            f"--key-file={key}",
            f"--pid-file={munge_dir / 'munged.pid'}",
            f"--log-file={munge_dir / 'munged.log'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
        ],
        check=True,
    )
    _wait("munged", (munge_dir / "munge.socket.2").exists, 10)
    subprocess.run(["slurmctld"], check=True)
    subprocess.run(["slurmd"], check=True)
    _wait("the node", lambda: _node_state() == "idle", 30)


def _kill(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
    except (ValueError, IndexError):
        pid_file.unlink()
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)


def stop(root: Path) -> None:
    """Stop the daemons started from ``root`` and remove the /etc/slurm links."""
    root = root.resolve()
    for pid_file in (root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"):
        _kill(pid_file)
    _unlink_etc(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="the cluster's folder")
    parser.add_argument("--cpus", type=int, help="CPUs of the node (default: this machine's)")
    parser.add_argument("--memory-mb", type=int, help="memory of the node (default: 80 %%)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs declared: 0 or 1 (default)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            start(args.dir, args.cpus, args.memory_mb, args.gpus)
            print(f"SLURM cluster up: {_node_state()} node, partitions cpu and gpu ({args.dir})")
        else:
            stop(args.dir)
            print(f"SLURM cluster in {args.dir} stopped")
    except (ClusterError, subprocess.CalledProcessError) as exc:
        print(f"local_cluster: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
