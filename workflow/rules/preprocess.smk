# Preprocessing: fitted on the training split only, applied to every split.


rule fit_preprocessing:
    input:
        f"{DATA}/train.nc",
    output:
        TRANSFORM,
    params:
        preprocessing=PARAMS["preprocessing"],
    log:
        f"logs/{NAME}/fit_preprocessing.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 6 * input.size_mb,
        runtime=30,
    conda:
        "../../envs/specinv.yaml"
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
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 6 * input.size_mb,
        runtime=30,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/preprocess_apply.py"
