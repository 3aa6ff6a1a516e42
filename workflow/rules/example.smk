rule simulate_example:
    input:
        config["example"]["experiment"],
    output:
        csv="results/example/spectrum.csv",
        png=report(
            "results/example/spectrum.png",
            caption="../report/example_spectrum.rst",
            category="RBS simulator",
        ),
    log:
        "logs/example/simulate.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/specinv.yaml"
    shell:
        "specinv rbs simulate {input} -o {output.csv} --plot {output.png} > {log} 2>&1"
