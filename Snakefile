# specinv workflow entry point.  Rules live in workflow/rules/, one file per stage; all the
# work is done by the specinv library and its command line.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/example.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        all_outputs(),
    default_target: True


onsuccess:
    # tell the user where the results are, and show the comparison of the methods
    made = [p for p in (*TABLES.values(), *(f for pair in FIGURES.values() for f in pair))
            if Path(p).exists()]
    if made:
        print(f"\nspecinv: tables and figures of {NAME} (HTML report: snakemake --report "
              f"report.html):\n  " + "\n  ".join(made))
        methods = Path(TABLES["methods"]).with_suffix(".md")
        if methods.exists():
            print(f"\n{methods}:\n{methods.read_text()}")
