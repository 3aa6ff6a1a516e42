# Measured spectra analysed with the run's networks (`measured` in the configuration; a
# technique with an analysis of measured spectra, e.g. `specinv rbs analyze`): mapping data
# or in-situ series, one job for all files.


if PLAN.measured:

    rule analyze_measured:
        input:
            models=expand(
                f"{RESULTS}/models/n{PLAN.measured['size']}/member{{member}}/model.ckpt",
                member=MEMBERS,
            ),
            transform=TRANSFORM,
            test=f"{RESULTS}/data/test.nc",
            spectra=measured_files(PLAN.measured["spectra"]),
        output:
            PLAN.measured_outputs,
        log:
            f"logs/{NAME}/measured.log",
        conda:
            "../../envs/specinv.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=120,
        params:
            measured=PARAMS["measured"],
            results=RESULTS,
        script:
            "../../scripts/analyze_measured.py"
