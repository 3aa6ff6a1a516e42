# Preprocessing: fitted on the training split only, applied to every split.


rule fit_preprocessing:
    input:
        f"{DATA}/train.nc",
    output:
        f"results/{NAME}/preprocessing/transform.json",
    params:
        preprocessing=config["preprocessing"],
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
        transform=f"results/{NAME}/preprocessing/transform.json",
    output:
        f"results/{NAME}/processed/{{split}}.nc",
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
