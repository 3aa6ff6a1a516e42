# Tables (CSV + Markdown) and figures (PNG + PDF) of the paper, from predictions and fits.


rule tables:
    input:
        unpack(table_inputs),
    output:
        chi2=TABLES["chi2"],
        coverage=TABLES["coverage"],
        methods=TABLES["methods"],
        mre=TABLES["mre"],
        information=TABLES["information"],
        **{
            f"{name}_html": report(
                TABLES_HTML[name], caption=f"../report/table_{name}.rst", category="Tables"
            )
            for name in ("chi2", "coverage", "methods", "mre", "information")
        },
    params:
        sizes=TRAIN_SIZES,
        model_size=MODEL_SIZE,
        methods=FIT_METHODS,
    log:
        f"logs/{NAME}/tables.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/evaluate_tables.py"


rule runtime_table:
    input:
        lambda wc: [f for files in runtime_inputs(wc).values() for f in files],
    output:
        TABLES["runtimes"],
        report(TABLES_HTML["runtimes"], caption="../report/table_runtimes.rst",
               category="Tables"),
    params:
        stages=runtime_inputs,
    log:
        f"logs/{NAME}/runtime_table.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/evaluate_runtimes.py"


rule figures:
    input:
        unpack(evaluation_inputs),
    output:
        **{
            f"{name.replace('-', '_')}_png": report(
                png, caption=f"../report/{name}.rst", category="Evaluation"
            )
            for name, (png, pdf) in FIGURES.items()
        },
        **{
            f"{name.replace('-', '_')}_pdf": pdf
            for name, (png, pdf) in FIGURES.items()
        },
    params:
        sizes=TRAIN_SIZES,
        model_size=MODEL_SIZE,
        methods=FIT_METHODS,
        names=FIGURE_NAMES,
    log:
        f"logs/{NAME}/figures.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/evaluate_figures.py"
