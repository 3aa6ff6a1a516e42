# A single spectrum from a file of the technique (`specinv <technique> simulate FILE`, run in
# the workflow's own interpreter): a smoke test of the forward model (example.experiment;
# none when null).


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
        script:
            "../../scripts/example_simulate.py"
