# Tables (CSV + Markdown + HTML) and figures (PNG + PDF) of the evaluation; the technique's
# task decides which (regression: the paper's; multilabel: classification scores).


rule tables:
    input:
        unpack(table_inputs),
    output:
        **{name: path for name, path in TABLES.items() if name != "runtimes"},
        **{
            f"{name}_html": report(
                TABLES_HTML[name],
                caption=f"../report/table_{name}.rst",
                category="Tables",
            )
            for name in TABLES
            if name != "runtimes"
        },
    log:
        f"logs/{NAME}/tables.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        evaluation=PARAMS["tables"],
        sizes=TRAIN_SIZES,
        model_size=MODEL_SIZE,
        methods=FIT_METHODS,
    script:
        "../../scripts/evaluate_tables.py"


rule runtime_table:
    input:
        lambda wc: [f for files in runtime_inputs(wc).values() for f in files],
    output:
        TABLES["runtimes"],
        report(
            TABLES_HTML["runtimes"],
            caption="../report/table_runtimes.rst",
            category="Tables",
        ),
    log:
        f"logs/{NAME}/runtime_table.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        stages=runtime_inputs,
        evaluation=PARAMS["runtimes"],
    script:
        "../../scripts/evaluate_runtimes.py"


rule figures:
    input:
        unpack(evaluation_inputs),
    output:
        **{
            f"{name}_png": report(
                png, caption=f"../report/figure_{name}.rst", category="Evaluation"
            )
            for name, (png, pdf) in FIGURES.items()
        },
        **{f"{name}_pdf": pdf for name, (png, pdf) in FIGURES.items()},
    log:
        f"logs/{NAME}/figures.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        evaluation=PARAMS["figures"],
        sizes=TRAIN_SIZES,
        model_size=MODEL_SIZE,
        methods=FIT_METHODS,
        names=list(FIGURES),
    script:
        "../../scripts/evaluate_figures.py"
