# Training (one network, or an ensemble of training.ensemble networks, per training-set size
# of the sweep) and prediction on the test split.


rule train_network:
    input:
        train=f"{RESULTS}/processed/train.nc",
        validation=f"{RESULTS}/processed/validation.nc",
        # parameters of the training spectra and the preprocessing, for training.resample_noise
        raw_train=f"{DATA}/train.nc",
        transform=TRANSFORM,
    output:
        model=f"{RESULTS}/models/n{{n_train}}/member{{member}}/model.ckpt",
        summary=f"{RESULTS}/models/n{{n_train}}/member{{member}}/summary.json",
    log:
        f"logs/{NAME}/train/n{{n_train}}-member{{member}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/n{{n_train}}-member{{member}}.tsv"
    conda:
        "../../envs/specinv.yaml"
    threads: 2
    resources:
        # uses a GPU when there is one, and the CPU otherwise
        gpu=1,
        mem_mb=6000,
        runtime=240,
    params:
        training=PARAMS["training"],
    script:
        "../../scripts/train.py"


rule predict_network:
    input:
        **(
            {}
            if PLAN.regression
            else {"validation": f"{RESULTS}/processed/validation.nc"}
        ),
        model=expand(
            f"{RESULTS}/models/n{{{{n_train}}}}/member{{member}}/model.ckpt",
            member=MEMBERS,
        ),
        test=f"{RESULTS}/processed/test.nc",
        transform=TRANSFORM,
    output:
        **({} if PLAN.regression else {"validation": VALIDATION_PREDICTIONS}),
        test=PREDICTIONS,
    log:
        f"logs/{NAME}/predict/n{{n_train}}.log",
    conda:
        "../../envs/specinv.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../../scripts/predict.py"
