# Fits of the test spectra: the MDN alone (back-simulated), Autofit and ML + Autofit
# (Nelder-Mead, sharded), and the batched gradient refinement from the MDN mean.


rule evaluate_mdn:
    input:
        predictions=f"results/{NAME}/predictions/n{{n_train}}/test.nc",
        test=f"{DATA}/test.nc",
        transform=f"results/{NAME}/preprocessing/transform.json",
    output:
        f"results/{NAME}/fits/mdn_n{{n_train}}.nc",
    log:
        f"logs/{NAME}/fits/mdn_n{{n_train}}.log",
    benchmark:
        f"results/{NAME}/benchmarks/fit/mdn_n{{n_train}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/fit_mdn.py"


rule fit_nelder_mead:
    input:
        unpack(nelder_mead_inputs),
    output:
        f"results/{NAME}/fits/{{method}}/shard-{{shard}}-of-{FITTING.shards}.nc",
    log:
        f"logs/{NAME}/fits/{{method}}/shard-{{shard}}.log",
    benchmark:
        f"results/{NAME}/benchmarks/fit/{{method}}-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=600,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/fit_nelder_mead.py"


rule merge_fits:
    input:
        lambda wc: [
            f"results/{NAME}/fits/{wc.method}/shard-{s}-of-{FITTING.shards}.nc"
            for s in FIT_SHARDS
        ],
    output:
        f"results/{NAME}/fits/{{method}}.nc",
    log:
        f"logs/{NAME}/fits/{{method}}-merge.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/fit_merge.py"


rule fit_refine:
    input:
        predictions=f"results/{NAME}/predictions/n{MODEL_SIZE}/test.nc",
        test=f"{DATA}/test.nc",
        transform=f"results/{NAME}/preprocessing/transform.json",
    output:
        f"results/{NAME}/fits/mdn_refine.nc",
    log:
        f"logs/{NAME}/fits/mdn_refine.log",
    benchmark:
        f"results/{NAME}/benchmarks/fit/mdn_refine.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1 if FITTING.device == "cuda" else 0,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/fit_refine.py"


rule information_limit:
    input:
        test=f"{DATA}/test.nc",
        transform=f"results/{NAME}/preprocessing/transform.json",
    output:
        f"results/{NAME}/fits/information_limit.nc",
    log:
        f"logs/{NAME}/fits/information_limit.log",
    benchmark:
        f"results/{NAME}/benchmarks/fit/information_limit.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1 if FITTING.device == "cuda" else 0,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/information_limit.py"
