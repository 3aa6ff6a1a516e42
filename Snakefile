# specinv workflow entry point.  Rules live in workflow/rules/, one file per stage; all the
# work is done by the specinv library and its command line.
from pathlib import Path

from snakemake.utils import min_version

from specinv.threads import limit_spin_waiting

min_version("9.0")

# idle OpenMP threads of the jobs spin briefly, then sleep (jobs inherit this environment;
# on a shared node long-spinning threads steal cores): specinv.threads
limit_spin_waiting()


# A configuration given on the command line that names its technique is complete (a paper
# experiment, another technique): it replaces the default one.  One that does not (an
# override such as config/paper/ema.yaml, or --config key=value) is laid over the default.
if "technique" not in config:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/example.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/measured.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


onsuccess:
    # tell the user where the results are, and show the comparison of the methods
    made = [
        p
        for p in (*TABLES.values(), *(f for pair in FIGURES.values() for f in pair))
        if Path(p).exists()
    ]
    if made:
        print(
            f"\nspecinv: tables and figures of {NAME} (HTML report: snakemake --report "
            f"report.html):\n  " + "\n  ".join(made)
        )
        summary = Path(
            TABLES.get("methods") or TABLES["classification"]
        ).with_suffix(".md")
        if summary.exists():
            print(f"\n{summary}:\n{summary.read_text()}")
