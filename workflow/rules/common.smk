import json

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from specinv.data import SPLITS, dataset_config, preprocess_settings
from specinv.fitting.runner import FitSettings
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
    FITTING = FitSettings.from_config(config)
    MODEL_SIZE = config["evaluation"]["model_size"] or max(TRAIN_SIZES)
    if MODEL_SIZE not in TRAIN_SIZES:
        raise ValueError(f"evaluation.model_size: {MODEL_SIZE} is not one of training.sizes "
                         f"({', '.join(map(str, TRAIN_SIZES))})")
    if FITTING.n_spectra(DATASET.sizes["test"], "autofit") < FITTING.shards:
        raise ValueError(f"fitting.shards: {FITTING.shards} shards for "
                         f"{FITTING.n_spectra(DATASET.sizes['test'], 'autofit')} fitted "
                         f"spectra")
except ValueError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

NAME = DATASET.name
SHARDS = list(range(DATASET.shards))
#: the networks of a deep ensemble (one unless training.ensemble says more)
MEMBERS = list(range(TRAINING.ensemble))
FIT_SHARDS = list(range(FITTING.shards))
FIT_METHODS = ["autofit", "mdn_autofit", "mdn_refine"]
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
    member=r"\d+",
    method="autofit|mdn_autofit",


def shard_path(shard):
    return f"{DATA}/shards/shard-{shard}-of-{DATASET.shards}.nc"


def simulation_resources(wildcards):
    """Memory of one simulation job: its spectra as int32 (and float32 if expected are
    kept) plus the simulator's working set."""
    start, stop = DATASET.shard_range(int(wildcards.shard))
    channels = config["experiment"]["detector"]["channels"]
    per_spectrum = channels * (4 + (4 if DATASET.store_expected else 0) + 16)
    return 1500 + (stop - start) * per_spectrum // 2**20


RESULTS = f"results/{NAME}"
TABLES = {
    "runtimes": f"{RESULTS}/tables/table1_runtimes.csv",
    "chi2": f"{RESULTS}/tables/table2-4_chi2_profile.csv",
    "coverage": f"{RESULTS}/tables/table5_coverage.csv",
    "methods": f"{RESULTS}/tables/table6_methods.csv",
    "mre": f"{RESULTS}/tables/fig4-7_mre_vs_training_size.csv",
    "information": f"{RESULTS}/tables/information_limit.csv",
}
#: HTML renderings of the tables, written next to the CSVs, shown in ``snakemake --report``
TABLES_HTML = {name: path.removesuffix(".csv") + ".html" for name, path in TABLES.items()}
FIGURE_NAMES = [
    "fig4-7_mre_vs_training_size",
    "fig8-10_prediction_ratio",
    "chi2_distributions",
    "example_fits",
]
FIGURES = {
    name: [f"{RESULTS}/figures/{name}.{ext}" for ext in ("png", "pdf")]
    for name in FIGURE_NAMES
}


def evaluation_inputs(wildcards):
    """Predictions and fit results that the tables and figures are made of."""
    return {
        "test": f"{DATA}/test.nc",
        "transform": f"{RESULTS}/preprocessing/transform.json",
        "predictions": [f"{RESULTS}/predictions/n{n}/test.nc" for n in TRAIN_SIZES],
        "mdn": [f"{RESULTS}/fits/mdn_n{n}.nc" for n in TRAIN_SIZES],
        "fits": [f"{RESULTS}/fits/{m}.nc" for m in FIT_METHODS],
    }


def table_inputs(wildcards):
    """What the tables are made of: the evaluation inputs and the Cramér–Rao bounds."""
    return {**evaluation_inputs(wildcards),
            "information": f"{RESULTS}/fits/information_limit.nc"}


def runtime_inputs(wildcards):
    """The Snakemake benchmark files of every stage of Table 1."""
    bench = f"{RESULTS}/benchmarks"
    stages = {
        "simulation": [f"{bench}/simulate/shard-{s}.tsv" for s in SHARDS],
        **{f"training (n={n})": [f"{bench}/train/n{n}-member{k}.tsv" for k in MEMBERS]
           for n in TRAIN_SIZES},
        "MDN back-simulation": [f"{bench}/fit/mdn_n{MODEL_SIZE}.tsv"],
        **{
            f"{m} fits": [f"{bench}/fit/{m}-{s}.tsv" for s in FIT_SHARDS]
            for m in ("autofit", "mdn_autofit")
        },
        "mdn_refine fits": [f"{bench}/fit/mdn_refine.tsv"],
        "Cramér-Rao bounds": [f"{bench}/fit/information_limit.tsv"],
    }
    return stages


def nelder_mead_inputs(wildcards):
    """Autofit starts from a fixed point (the training mean needs the training split);
    ML + Autofit from the MDN mean."""
    inputs = {"test": f"{DATA}/test.nc",
              "transform": f"results/{NAME}/preprocessing/transform.json"}
    if wildcards.method == "mdn_autofit":
        inputs["predictions"] = f"results/{NAME}/predictions/n{MODEL_SIZE}/test.nc"
    elif FITTING.autofit_start == "mean":
        inputs["train"] = f"{DATA}/train.nc"
    return inputs


def all_outputs():
    """Every file the default target produces."""
    return [
        "results/example/spectrum.csv",
        "results/example/spectrum.png",
        *expand("results/{name}/processed/{split}.nc", name=NAME, split=SPLITS),
        *expand("results/{name}/predictions/n{n}/test.nc", name=NAME, n=TRAIN_SIZES),
        *TABLES.values(),
        *[path for paths in FIGURES.values() for path in paths],
    ]
