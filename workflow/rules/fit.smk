# Fits of the test spectra (regression techniques): the network alone (back-simulated),
# Autofit and network + Autofit (Nelder-Mead, sharded), the batched gradient refinement from
# the network's estimate (or from network + Autofit's result), and the Cramér-Rao bounds of
# the fitted spectra.


if PLAN.regression:

    rule evaluate_network:
        input:
            predictions=PREDICTIONS,
            test=f"{DATA}/test.nc",
            transform=TRANSFORM,
        output:
            f"{RESULTS}/fits/{KIND}_n{{n_train}}.nc",
        log:
            f"logs/{NAME}/fits/{KIND}_n{{n_train}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/fit/{KIND}_n{{n_train}}.tsv"
        conda:
            "../../envs/specinv.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=60,
        script:
            "../../scripts/fit_network.py"

    rule fit_nelder_mead:
        input:
            unpack(nelder_mead_inputs),
        output:
            f"{RESULTS}/fits/{{method}}/shard-{{shard}}-of-{PLAN.fitting.shards}.nc",
        log:
            f"logs/{NAME}/fits/{{method}}/shard-{{shard}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/fit/{{method}}-{{shard}}.tsv"
        conda:
            "../../envs/specinv.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=600,
        params:
            fitting=lambda wc: PARAMS[wc.method],
        script:
            "../../scripts/fit_nelder_mead.py"

    rule merge_fits:
        input:
            lambda wc: [
                f"{RESULTS}/fits/{wc.method}/shard-{s}-of-{PLAN.fitting.shards}.nc"
                for s in FIT_SHARDS
            ],
        output:
            f"{RESULTS}/fits/{{method}}.nc",
        log:
            f"logs/{NAME}/fits/{{method}}-merge.log",
        conda:
            "../../envs/specinv.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../../scripts/fit_merge.py"

    rule fit_refine:
        input:
            unpack(refine_inputs),
        output:
            f"{RESULTS}/fits/{KIND}_refine.nc",
        log:
            f"logs/{NAME}/fits/{KIND}_refine.log",
        benchmark:
            f"{RESULTS}/benchmarks/fit/{KIND}_refine.tsv"
        conda:
            "../../envs/specinv.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=gpu_if(PLAN.fitting.device),
        params:
            fitting=PARAMS[f"{KIND}_refine"],
            method=f"{KIND}_refine",
        script:
            "../../scripts/fit_refine.py"

    rule reference_posterior:
        input:
            test=f"{DATA}/test.nc",
            transform=TRANSFORM,
            start=f"{RESULTS}/fits/{KIND}_refine.nc",
        output:
            f"{RESULTS}/fits/reference_posterior.nc",
        log:
            f"logs/{NAME}/fits/reference_posterior.log",
        benchmark:
            f"{RESULTS}/benchmarks/fit/reference_posterior.tsv"
        conda:
            "../../envs/specinv.yaml"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=600,
            gpu=gpu_if(PLAN.fitting.device),
        params:
            fitting=PARAMS["posterior"],
        script:
            "../../scripts/reference_posterior.py"

    rule information_limit:
        input:
            test=f"{DATA}/test.nc",
            transform=TRANSFORM,
        output:
            f"{RESULTS}/fits/information_limit.nc",
        log:
            f"logs/{NAME}/fits/information_limit.log",
        benchmark:
            f"{RESULTS}/benchmarks/fit/information_limit.tsv"
        conda:
            "../../envs/specinv.yaml"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=60,
            gpu=gpu_if(PLAN.fitting.device),
        params:
            fitting=PARAMS["information"],
        script:
            "../../scripts/information_limit.py"
