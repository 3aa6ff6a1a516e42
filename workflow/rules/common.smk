# The plan of the run comes from the specinv library (specinv.plan): the configuration is
# validated there (generic schema, the technique's schema fragment, the technique's own
# checks) before any job runs, and every path, list and rule parameter is read from it.
from snakemake.exceptions import WorkflowError

from specinv.config import ConfigError
from specinv.data import SPLITS
from specinv.plan import measured_files, workflow_plan

try:
    # fills the schemas' defaults into `config`; re-reads the configuration files strictly;
    # checks the devices asked for where the jobs run here (not in a cluster's jobs, which
    # plan again on their nodes)
    PLAN = workflow_plan(
        config,
        in_place=True,
        files=workflow.configfiles,
        check_devices=workflow.local_exec
        and not (workflow.remote_exec or workflow.subprocess_exec),
    )
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

DATASET = PLAN.dataset
NAME = PLAN.name
RESULTS = PLAN.results
DATA = f"{RESULTS}/data"
KIND = PLAN.kind
TRAIN_SIZES = PLAN.train_sizes
MODEL_SIZE = PLAN.model_size
SHARDS = list(range(DATASET.shards))
#: the networks of a deep ensemble (one unless training.ensemble says more)
MEMBERS = list(range(PLAN.training.ensemble))
FIT_SHARDS = list(range(PLAN.fitting.shards))
#: fit methods (regression techniques): autofit, <kind>_autofit, <kind>_refine
FIT_METHODS = PLAN.fit_methods
NM_METHODS = PLAN.nelder_mead_methods
#: canonical text of the configuration each step reads (its rerun trigger)
PARAMS = PLAN.params()
TABLES = PLAN.tables
#: HTML renderings of the tables, written next to the CSVs, shown in ``snakemake --report``
TABLES_HTML = {
    name: path.removesuffix(".csv") + ".html" for name, path in TABLES.items()
}
FIGURES = PLAN.figures
PREDICTIONS = f"{RESULTS}/predictions/n{{n_train}}/test.nc"
#: a multi-label network's predictions for the validation split (its balanced threshold)
VALIDATION_PREDICTIONS = f"{RESULTS}/predictions/n{{n_train}}/validation.nc"
TRANSFORM = f"{RESULTS}/preprocessing/transform.json"


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d+",
    n_train=r"\d+",
    member=r"\d+",
    method="|".join(NM_METHODS) or "none",


def shard_path(shard):
    return f"{DATA}/shards/shard-{shard}-of-{DATASET.shards}.nc"


def simulation_resources(wildcards):
    """Memory of one simulation job: its spectra as int32 (and float32 if expected are
    kept) plus the simulator's working set."""
    start, stop = DATASET.shard_range(int(wildcards.shard))
    channels = DATASET.technique_instance.n_channels
    per_spectrum = channels * (4 + (4 if DATASET.store_expected else 0) + 16)
    return 1500 + (stop - start) * per_spectrum // 2**20


def gpu_if(device):
    """One GPU for a job that runs on CUDA, none otherwise."""
    return 1 if device == "cuda" else 0


def evaluation_inputs(wildcards):
    """Predictions and fit results that the tables and figures are made of."""
    inputs = {
        "test": f"{DATA}/test.nc",
        "transform": TRANSFORM,
        "predictions": [PREDICTIONS.format(n_train=n) for n in TRAIN_SIZES],
    }
    if not PLAN.regression:
        inputs["validation"] = [
            VALIDATION_PREDICTIONS.format(n_train=n) for n in TRAIN_SIZES
        ]
    if PLAN.regression:
        inputs["network"] = [f"{RESULTS}/fits/{KIND}_n{n}.nc" for n in TRAIN_SIZES]
        inputs["fits"] = [f"{RESULTS}/fits/{m}.nc" for m in FIT_METHODS]
    return inputs


def table_inputs(wildcards):
    """What the tables are made of: the evaluation inputs and the Cramér–Rao bounds."""
    inputs = evaluation_inputs(wildcards)
    if PLAN.regression:
        inputs["information"] = f"{RESULTS}/fits/information_limit.nc"
    if PLAN.regression and PLAN.fitting.posterior_spectra:
        inputs["posterior"] = f"{RESULTS}/fits/reference_posterior.nc"
    return inputs


def runtime_inputs(wildcards):
    """The Snakemake benchmark files of every stage of the run-time table."""
    bench = f"{RESULTS}/benchmarks"
    stages = {
        "simulation": [f"{bench}/simulate/shard-{s}.tsv" for s in SHARDS],
        **{
            f"training (n={n})": [f"{bench}/train/n{n}-member{k}.tsv" for k in MEMBERS]
            for n in TRAIN_SIZES
        },
    }
    if PLAN.regression:
        stages[f"{PLAN.label} back-simulation"] = [
            f"{bench}/fit/{KIND}_n{MODEL_SIZE}.tsv"
        ]
        for m in NM_METHODS:
            stages[f"{m} fits"] = [f"{bench}/fit/{m}-{s}.tsv" for s in FIT_SHARDS]
        stages[f"{KIND}_refine fits"] = [f"{bench}/fit/{KIND}_refine.tsv"]
        stages["Cramér-Rao bounds"] = [f"{bench}/fit/information_limit.tsv"]
        if PLAN.fitting.posterior_spectra:
            stages["reference posterior (MCMC)"] = [
                f"{bench}/fit/reference_posterior.tsv"
            ]
    return stages


def nelder_mead_inputs(wildcards):
    """Autofit starts from a fixed point (the training mean needs the training split);
    network + Autofit from the network's estimate."""
    inputs = {"test": f"{DATA}/test.nc", "transform": TRANSFORM}
    if wildcards.method != "autofit":
        inputs["predictions"] = PREDICTIONS.format(n_train=MODEL_SIZE)
    elif PLAN.fitting.autofit_start == "mean":
        inputs["train"] = f"{DATA}/train.nc"
    return inputs


def refine_inputs(wildcards):
    """The refinement starts from the network's estimate or, with fitting.refine_from:
    ml_autofit, from network + Autofit's result; fitting.refine_prior: network also reads
    the network's estimates (its prior)."""
    inputs = {"test": f"{DATA}/test.nc", "transform": TRANSFORM}
    if PLAN.fitting.refine_from == "ml_autofit":
        inputs["start"] = f"{RESULTS}/fits/{KIND}_autofit.nc"
    if PLAN.fitting.refine_from == "network" or PLAN.fitting.refine_prior == "network":
        inputs["predictions"] = PREDICTIONS.format(n_train=MODEL_SIZE)
    return inputs


def all_outputs():
    """Every file the default target produces."""
    example = ["results/example/spectrum.csv", "results/example/spectrum.png"]
    return [
        *(example if PLAN.example else []),
        *expand("{results}/processed/{split}.nc", results=RESULTS, split=SPLITS),
        *[PREDICTIONS.format(n_train=n) for n in TRAIN_SIZES],
        *TABLES.values(),
        *[path for paths in FIGURES.values() for path in paths],
        *PLAN.measured_outputs,
    ]
