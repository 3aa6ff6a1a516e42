# Data stages: sample parameters -> simulate in shards -> merge -> split.


rule sample_parameters:
    output:
        f"{DATA}/parameters.nc",
    log:
        f"logs/{NAME}/sample_parameters.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        data=PARAMS["data"],
    script:
        "../../scripts/data_sample.py"


rule simulate_shard:
    input:
        f"{DATA}/parameters.nc",
    output:
        f"{DATA}/shards/shard-{{shard}}-of-{DATASET.shards}.nc",
    log:
        f"logs/{NAME}/simulate/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate/shard-{{shard}}.tsv"
    conda:
        "../../envs/specinv.yaml"
    threads: config["data"]["threads"]
    resources:
        mem_mb=simulation_resources,
        runtime=60,
        gpu=gpu_if(DATASET.device),
    params:
        data=PARAMS["data"],
    script:
        "../../scripts/data_simulate.py"


rule merge_shards:
    input:
        [shard_path(s) for s in SHARDS],
    output:
        f"{DATA}/spectra.nc",
    log:
        f"logs/{NAME}/merge_shards.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 3 * input.size_mb,
        runtime=30,
    script:
        "../../scripts/data_merge.py"


rule split_data:
    input:
        f"{DATA}/spectra.nc",
    output:
        [f"{DATA}/{split}.nc" for split in SPLITS],
    log:
        f"logs/{NAME}/split_data.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 3 * input.size_mb,
        runtime=30,
    script:
        "../../scripts/data_split.py"
