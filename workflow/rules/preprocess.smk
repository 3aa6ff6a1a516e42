# Preprocessing: fitted on the training split only, applied to every split.


rule fit_preprocessing:
    input:
        f"{DATA}/train.nc",
    output:
        TRANSFORM,
    log:
        f"logs/{NAME}/fit_preprocessing.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 6 * input.size_mb,
        runtime=30,
    params:
        preprocessing=PARAMS["preprocessing"],
    script:
        "../../scripts/preprocess_fit.py"


rule apply_preprocessing:
    input:
        data=f"{DATA}/{{split}}.nc",
        transform=TRANSFORM,
    output:
        f"{RESULTS}/processed/{{split}}.nc",
    log:
        f"logs/{NAME}/apply_preprocessing/{{split}}.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 6 * input.size_mb,
        runtime=30,
    script:
        "../../scripts/preprocess_apply.py"
