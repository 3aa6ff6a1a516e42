"""JaBS's measured example fitted by JaBS and by ``specinv rbs fit``, alternately, on this
machine: wall time of each command, the fit's own time, and the reduced χ².

    python benchmarks/rbs_measured_fit.py --jabs ~/jabs/bin/jabs [--repeats 3]

JaBS is built by ../shared/tools/jabs/build.sh (it is not a dependency of specinv).  Both
fit the 8 parameters of JaBS's example.jbs over its 562 channels from its starting values.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FREE = "fluence,layer1.thickness,layer1.roughness,layer2.thickness,layer2.O,resolution,offset,gain"


def run_jabs(jabs: str, example: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "example"
        shutil.copytree(example, work, ignore=shutil.ignore_patterns("jabs_fit"))
        t0 = time.perf_counter()
        r = subprocess.run(
            [jabs, "example.jbs"], cwd=work, capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - t0
    out = r.stdout + r.stderr
    fit_time = float(re.findall(r"Total time: ([\d.]+) s", out)[-1])
    chi2 = float(re.findall(r"Final chisq/dof = ([\d.]+)", out)[-1])
    return {"wall_s": wall, "fit_s": fit_time, "reduced_chi2": chi2}


def run_specinv(example: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "specinv.cli",
            "rbs",
            "fit",
            str(example / "experimental.dat"),
            "--experiment",
            str(REPO / "examples" / "rbs_jabs_example.yaml"),
            "--fit",
            FREE,
            *("--roi", "200:449", "--roi", "450:700", "--roi", "1050:1110"),
            "-o",
            str(Path(tmp) / "fit"),
        ]
        t0 = time.perf_counter()
        subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
        wall = time.perf_counter() - t0
        result = json.loads((Path(tmp) / "fit" / "result.json").read_text())
    return {"wall_s": wall, "fit_s": result["seconds"], "reduced_chi2": result["reduced_chi2"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jabs", required=True, help="the jabs executable")
    parser.add_argument(
        "--example",
        type=Path,
        default=REPO.parent / "shared" / "real" / "jabs_example",
        help="folder of JaBS's example (experimental.dat, example.jbs, detector.jbs)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = {"JaBS": [], "specinv": []}
    for _ in range(args.repeats):  # alternately, so that both see the same machine state
        rows["JaBS"].append(run_jabs(args.jabs, args.example))
        rows["specinv"].append(run_specinv(args.example))
    print("| code | command wall time (s) | fit time (s) | reduced chi2 |")
    print("|---|---|---|---|")
    for code, runs in rows.items():
        wall = [r["wall_s"] for r in runs]
        fit = [r["fit_s"] for r in runs]
        print(
            f"| {code} | {statistics.median(wall):.2f} ({min(wall):.2f}-{max(wall):.2f}) | "
            f"{statistics.median(fit):.2f} ({min(fit):.2f}-{max(fit):.2f}) | "
            f"{runs[0]['reduced_chi2']:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
