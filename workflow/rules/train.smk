# Training (one model, or an ensemble of training.ensemble models, per training-set size of
# the sweep) and prediction on the test split.


rule train_mdn:
    input:
        train=f"results/{NAME}/processed/train.nc",
        validation=f"results/{NAME}/processed/validation.nc",
        # parameters of the training spectra and the preprocessing, for training.resample_noise
        raw_train=f"{DATA}/train.nc",
        transform=f"results/{NAME}/preprocessing/transform.json",
    output:
        model=f"results/{NAME}/models/n{{n_train}}/member{{member}}/model.ckpt",
        summary=f"results/{NAME}/models/n{{n_train}}/member{{member}}/summary.json",
    params:
        model=config["model"],
        training={k: v for k, v in config["training"].items() if k not in ("sizes", "ensemble")},
    log:
        f"logs/{NAME}/train/n{{n_train}}-member{{member}}.log",
    benchmark:
        f"results/{NAME}/benchmarks/train/n{{n_train}}-member{{member}}.tsv"
    threads: 2
    resources:
        # uses a GPU when there is one, and the CPU otherwise
        gpu=1,
        mem_mb=6000,
        runtime=240,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/train.py"


rule predict_mdn:
    input:
        model=expand(f"results/{NAME}/models/n{{{{n_train}}}}/member{{member}}/model.ckpt",
                     member=MEMBERS),
        test=f"results/{NAME}/processed/test.nc",
        transform=f"results/{NAME}/preprocessing/transform.json",
    output:
        f"results/{NAME}/predictions/n{{n_train}}/test.nc",
    log:
        f"logs/{NAME}/predict/n{{n_train}}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/specinv.yaml"
    script:
        "../../scripts/predict.py"
