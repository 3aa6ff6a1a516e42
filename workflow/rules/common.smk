import json

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from specinv.data import SPLITS, dataset_config, preprocess_settings
from specinv.training import TrainingSettings, model_settings


validate(config, schema="../schemas/config.schema.yaml")
try:
    # element names, prior bounds, the experiment itself, preprocessing ranges
    DATASET = dataset_config(config)
    preprocess_settings(config)
    TRAINING = TrainingSettings.from_config(config)
    MODEL = model_settings(config)
    TRAIN_SIZES = list(TRAINING.sizes) or [DATASET.sizes["train"]]
    for n in TRAIN_SIZES:
        if n > DATASET.sizes["train"]:
            raise ValueError(f"training.sizes: {n} is larger than data.sizes.train "
                             f"({DATASET.sizes['train']})")
except ValueError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

NAME = DATASET.name
SHARDS = list(range(DATASET.shards))
DATA = f"results/{NAME}/data"
# what the simulated data depend on: a change reruns the data stages (batch size, threads
# and device do not change the data and do not rerun them)
DATA_KEY = {
    "technique": config["technique"],
    "experiment": config["experiment"],
    "sample": config["sample"],
    "data": {k: config["data"][k] for k in ("sizes", "seed", "noise", "dtype", "store_expected")},
}


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d+",
    n_train=r"\d+",


def shard_path(shard):
    return f"{DATA}/shards/shard-{shard}-of-{DATASET.shards}.nc"


def simulation_resources(wildcards):
    """Memory of one simulation job: its spectra as int32 (and float32 if expected are
    kept) plus the simulator's working set."""
    start, stop = DATASET.shard_range(int(wildcards.shard))
    channels = config["experiment"]["detector"]["channels"]
    per_spectrum = channels * (4 + (4 if DATASET.store_expected else 0) + 16)
    return 1500 + (stop - start) * per_spectrum // 2**20


def all_outputs():
    """Every file the default target produces."""
    return [
        "results/example/spectrum.csv",
        "results/example/spectrum.png",
        *expand("results/{name}/processed/{split}.nc", name=NAME, split=SPLITS),
        *expand("results/{name}/predictions/n{n}/test.nc", name=NAME, n=TRAIN_SIZES),
    ]
