# A single spectrum from a file of the technique (`specinv <technique> simulate FILE`): a
# smoke test of the forward model (example.experiment; none when null).


if PLAN.example:

    rule simulate_example:
        input:
            PLAN.example,
        output:
            csv="results/example/spectrum.csv",
            png=report(
                "results/example/spectrum.png",
                caption="../report/example_spectrum.rst",
                category="Forward model",
            ),
        log:
            "logs/example/simulate.log",
        conda:
            "../../envs/specinv.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            technique=DATASET.technique,
        shell:
            "specinv {params.technique} simulate {input} -o {output.csv} "
            "--plot {output.png} > {log} 2>&1"
