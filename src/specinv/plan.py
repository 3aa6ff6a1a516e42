"""The plan of a workflow run, from its configuration alone: what is trained, fitted,
tabulated and drawn, where the outputs go, and which configuration keys every step reads.

The Snakemake rules (``workflow/rules/``) are thin: they take their paths, lists and
parameters from a :class:`WorkflowPlan`.  The task of the technique decides the evaluation
(regression: back-simulated χ², fits, information limit, the paper's tables and figures;
multi-label classification: precision, recall, F1, exact-match ratio).  Every step's
``params`` are the canonical text (:func:`specinv.config.canonical`) of exactly the
configuration it reads, so that a changed key reruns what depends on it and nothing else,
and the order of the keys in a file does not matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import ConfigError, canonical, load_mapping_file, validate_config
from .data.config import DatasetConfig, dataset_config
from .data.preprocess import PreprocessSettings, preprocess_settings
from .fitting.settings import FIT_METHODS, FitSettings, method_name
from .models import model_kind
from .training.settings import TrainingSettings, member_model_settings

#: the keys of ``data`` that change the simulated data (not shards, batch size, threads,
#: device, which do not)
DATA_KEYS = ("sizes", "seed", "noise", "dtype", "store_expected")
#: keys of ``training`` that do not change a trained network's result: which networks
#: exist (sizes, ensemble), and execution settings
TRAINING_EXECUTION_KEYS = ("sizes", "ensemble", "progress_bar", "accelerator")
#: keys of ``fitting`` each fit reads (batch_size and shards change no result; shards are
#: part of the file names)
FIT_KEYS = {
    "autofit": (
        "spectra",
        "autofit_spectra",
        "autofit_evaluations_per_parameter",
        "restart_every",
        "autofit_start",
        "statistic",
    ),
    "ml_autofit": ("spectra", "ml_autofit_evaluations_per_parameter", "restart_every", "statistic"),
    "ml_refine": (
        "spectra",
        "refine_statistic",
        "refine_from",
        "refine_prior",
        "refine_iterations",
        "refine_chi2_tolerance",
        "refine_jacobian",
        "refine_broyden",
        "refine_starts",
        "refine_start_spread",
        "refine_screen_iterations",
        "seed",
        "statistic",
        "device",
    ),
    "information": ("spectra", "device"),
    # the posterior starts around the refinement's estimate: it reruns when that does
    "posterior": (
        "spectra",
        "posterior_spectra",
        "posterior_walkers",
        "posterior_steps",
        "posterior_burn",
        "posterior_thin",
        "seed",
        "device",
    ),
}
#: ids of the regression evaluation's tables and figures
REGRESSION_TABLES = (
    "runtimes",
    "chi2",
    "coverage",
    "methods",
    "mre",
    "information",
    "accuracy",
    "targets",
)
REGRESSION_FIGURES = (
    "mre_vs_training_size",
    "prediction_ratio",
    "chi2_distributions",
    "example_fits",
    "accuracy_vs_training_size",
    "predicted_vs_true",
)
#: the regression figure of a technique with depth profiles (Technique.depth_profile_labels)
PROFILE_FIGURES = ("profile_examples",)
CLASSIFICATION_TABLES = ("runtimes", "classification", "models", "labels", "confusions")
CLASSIFICATION_FIGURES = ("classification_vs_training_size", "label_scores", "prediction_examples")
#: file names of the ids that a technique does not rename (Technique.output_names)
DEFAULT_NAMES = {"information": "information_limit", "posterior": "reference_posterior"}


@dataclass(frozen=True)
class WorkflowPlan:
    """Everything the rules need, derived from a validated configuration.

    Attributes:
        config: the configuration with every default filled in.
        dataset: the data part (:class:`~specinv.data.DatasetConfig`).
        task: the technique's task; kind, label: the model kind and its display name.
        preprocessing, training, fitting: typed settings; model: the model spec.
        train_sizes: training-set sizes of the sweep; model_size: the one the fits use.
        output_names: file names of table and figure ids (Technique.output_names).
        depth_profiles: whether the technique has depth profiles (regression: the
            ``profile_examples`` figure).
    """

    config: Mapping[str, Any]
    dataset: DatasetConfig
    task: str
    preprocessing: PreprocessSettings
    training: TrainingSettings
    model: dict[str, Any]
    member_models: list[dict[str, Any]]
    fitting: FitSettings
    train_sizes: list[int]
    model_size: int
    output_names: Mapping[str, str] = field(default_factory=dict)
    depth_profiles: bool = False

    # ------------------------------------------------------------------ names
    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def results(self) -> str:
        return f"results/{self.name}"

    @property
    def measured(self) -> dict[str, Any] | None:
        """The ``measured`` section (spectra analysed with this run's networks) or None;
        ``size`` filled in (evaluation.model_size when null)."""
        section = self.config.get("measured")
        if section is None:
            return None
        return {**section, "size": section.get("size") or self.model_size}

    @property
    def measured_outputs(self) -> list[str]:
        if self.measured is None:
            return []
        folder = f"{self.results}/measured"
        return [f"{folder}/analysis.csv", f"{folder}/analysis.nc", f"{folder}/summary.png"]

    @property
    def kind(self) -> str:
        return self.model["kind"]

    @property
    def label(self) -> str:
        """The model's display name; a mixed ensemble's lists its members ("2×ViT +
        3×U-Net")."""
        kinds = [m["kind"] for m in self.member_models]
        if len(set(kinds)) == 1:
            return model_kind(self.kind).label
        counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        return " + ".join(f"{n}×{model_kind(k).label}" for k, n in counts.items())

    def member_model(self, member: int) -> dict[str, Any]:
        """The model spec of ensemble member ``member``."""
        return self.member_models[member]

    @property
    def mixed_ensemble(self) -> bool:
        """Whether the ensemble's members are not all the same model."""
        return any(m != self.model for m in self.member_models)

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def fit_methods(self) -> list[str]:
        """The fit methods' names (``autofit``, ``mdn_autofit``, ``mdn_refine``); none for
        a classification task."""
        return [method_name(m, self.kind) for m in FIT_METHODS] if self.regression else []

    @property
    def nelder_mead_methods(self) -> list[str]:
        return [m for m in self.fit_methods if m.endswith("autofit")]

    def _stem(self, kind: str, ident: str) -> str:
        names = {**DEFAULT_NAMES, **self.output_names}
        return f"{self.results}/{kind}/{names.get(ident, ident)}"

    @property
    def tables(self) -> dict[str, str]:
        """Table id -> CSV path (a Markdown and an HTML version are written beside it)."""
        ids = REGRESSION_TABLES if self.regression else CLASSIFICATION_TABLES
        if self.regression and self.fitting.posterior_spectra:
            ids = (*ids, "posterior")
        return {i: self._stem("tables", i) + ".csv" for i in ids}

    @property
    def figures(self) -> dict[str, list[str]]:
        """Figure id -> [PNG, PDF] paths: the task's figures, and for a regression
        technique with depth profiles also ``profile_examples``."""
        if self.regression:
            ids = REGRESSION_FIGURES + (PROFILE_FIGURES if self.depth_profiles else ())
        else:
            ids = CLASSIFICATION_FIGURES
        return {i: [self._stem("figures", i) + ext for ext in (".png", ".pdf")] for i in ids}

    @property
    def example(self) -> str | None:
        return self.config["example"]["experiment"]

    # ------------------------------------------------------------------ checks
    def check_devices(self) -> None:
        """ConfigError naming the key of a device the run asks for that this machine lacks
        (for jobs that run here; a cluster's GPU nodes are checked by the jobs themselves)."""
        from .devices import check_device

        c = self.config
        check_device(c["data"]["device"], "data.device")
        if self.regression:
            check_device(c["fitting"]["device"], "fitting.device")
        if c["training"]["accelerator"] in ("gpu", "cuda"):
            check_device(c["training"]["accelerator"], "training.accelerator")

    # ------------------------------------------------------------------ parameters
    def params(self) -> dict[str, str]:
        """Step -> the canonical text of exactly the configuration that step reads."""
        c = self.config
        t = self.dataset.technique
        fitting = c["fitting"]
        evaluation = c["evaluation"]
        shared_eval = {
            "model_size": self.model_size,
            "sizes": self.train_sizes,
            "methods": self.fit_methods,
        }
        # the regression evaluation reads the test level and the ratio figure's sample; the
        # classification its threshold
        table_keys = ("alpha",) if self.regression else ("threshold",)
        figure_keys = ("ratio_samples", "seed") if self.regression else ("seed",)
        out = {
            "data": {"technique": t, t: c[t], "data": {k: c["data"][k] for k in DATA_KEYS}},
            "preprocessing": {"settings": asdict(self.preprocessing), "task": self.task},
            "training": {
                "model": self.model,
                **({"members": self.member_models} if self.mixed_ensemble else {}),
                "training": {
                    k: v for k, v in c["training"].items() if k not in TRAINING_EXECUTION_KEYS
                },
            },
            "tables": {**shared_eval, **{k: evaluation[k] for k in table_keys}},
            "figures": {
                **shared_eval,
                **{k: evaluation[k] for k in (*table_keys, *figure_keys)},
            },
            "runtimes": {"paper_runtimes_h": evaluation["paper_runtimes_h"]},
        }
        for method, keys in FIT_KEYS.items():
            out[method_name(method, self.kind)] = {k: fitting[k] for k in keys}
        if self.measured is not None:
            out["measured"] = self.measured
        return {k: canonical(v) for k, v in out.items()}


def workflow_plan(
    config: Mapping[str, Any],
    *,
    in_place: bool = False,
    files: Sequence[str | Path] = (),
    check_devices: bool = False,
) -> WorkflowPlan:
    """Validate a workflow configuration and plan the run: every check that can be made
    before a job runs is made here.

    Args:
        in_place: fill the schema's defaults into ``config`` itself (Snakemake's ``config``).
        files: the configuration files ``config`` was read from; each is read again
            strictly (:func:`specinv.config.load_mapping_file`: UTF-8 text, no duplicate
            keys, bounded nesting and aliases), which a YAML reader does not check.
        check_devices: also check that the devices the configuration asks for (CUDA) exist
            on this machine (for a run whose jobs execute here, not on a cluster's nodes).

    Raises:
        ConfigError: naming the key, what was expected and what was found.
    """
    from .techniques import technique_class

    for path in files:
        load_mapping_file(path, "workflow configuration file")
    config = validate_config(config, in_place=in_place)
    dataset = dataset_config(config)
    cls = technique_class(dataset.technique)
    preprocessing = preprocess_settings(config, cls.preprocessing_defaults)
    training = TrainingSettings.from_config(config)
    members = member_model_settings(config, cls.task)
    model = members[0]
    if len(members) != training.ensemble:
        training = replace(training, ensemble=len(members))
    fitting = FitSettings.from_config(config)
    for split, use in (("validation", "early stopping"), ("test", "the evaluation")):
        if dataset.sizes[split] < 1:
            raise ConfigError(
                f"data.sizes.{split}: the workflow needs at least one {split} spectrum (for "
                f"{use}), got {dataset.sizes[split]}"
            )
    n_train = dataset.sizes["train"]
    sizes = list(training.sizes) or [n_train]
    for n in sizes:
        if n > n_train:
            raise ConfigError(f"training.sizes: {n} is larger than data.sizes.train ({n_train})")
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"training.sizes: expected distinct sizes, got {sizes}")
    model_size = config["evaluation"]["model_size"] or max(sizes)
    if model_size not in sizes:
        raise ConfigError(
            f"evaluation.model_size: {model_size} is not one of training.sizes "
            f"({', '.join(map(str, sizes))})"
        )
    if cls.task == "regression":
        if fitting.refine_prior == "network" and model["kind"] != "mdn" and training.ensemble < 2:
            raise ConfigError(
                f"fitting.refine_prior: network needs the network's uncertainty; a single "
                f"{model['kind']} gives none (use an mdn, or training.ensemble >= 2)"
            )
        fitted = fitting.n_spectra(dataset.sizes["test"], "autofit")
        if fitted < fitting.shards:
            raise ConfigError(
                f"fitting.shards: {fitting.shards} fit jobs for {fitted} fitted spectra "
                "(fitting.spectra, data.sizes.test); expected at most one job per spectrum"
            )
    technique = dataset.technique_instance
    _check_posterior(fitting, cls.task, technique.n_parameters)
    _check_input_bins(technique.n_channels, preprocessing, config["preprocessing"])
    if config["example"]["experiment"] is not None:
        cls.check_example(config["example"]["experiment"])
    _check_measured(config.get("measured"), cls, sizes, model_size)
    plan = WorkflowPlan(
        config=config,
        dataset=dataset,
        task=cls.task,
        preprocessing=preprocessing,
        training=training,
        model=model,
        member_models=members,
        fitting=fitting,
        train_sizes=sizes,
        model_size=model_size,
        output_names=dict(cls.output_names),
        depth_profiles=cls.depth_profile_labels is not None,
    )
    if check_devices:
        plan.check_devices()
    return plan


def _check_posterior(fitting: FitSettings, task: str, n_parameters: int) -> None:
    """ConfigError if the reference posterior is asked for where there is none (a
    classification), or with too few walkers for emcee's stretch move (2·D)."""
    if not fitting.posterior_spectra:
        return
    if task != "regression":
        raise ConfigError(
            f"fitting.posterior_spectra: a reference posterior needs a regression technique; "
            f"this one's task is {task} (set it to 0)"
        )
    if fitting.posterior_walkers and fitting.posterior_walkers < 2 * n_parameters:
        raise ConfigError(
            f"fitting.posterior_walkers: expected 0 or an even number >= 2 x "
            f"{n_parameters} parameters = {2 * n_parameters}, got {fitting.posterior_walkers}"
        )


def _check_measured(section, cls, sizes: Sequence[int], model_size: int) -> None:
    """ConfigError if ``measured`` asks for what the run cannot do: a technique without an
    analysis of measured spectra, a pattern that matches no file, an untrained size."""
    if section is None:
        return
    if cls.measured_analysis() is None:
        raise ConfigError(
            f"measured: technique {cls.name} has no analysis of measured spectra; remove the "
            "section"
        )
    if not measured_files(section["spectra"]):
        raise ConfigError(
            f"measured.spectra: {section['spectra']!r} matches no file (relative to {Path.cwd()})"
        )
    size = section.get("size") or model_size
    if size not in sizes:
        raise ConfigError(
            f"measured.size: {size} is not one of training.sizes ({', '.join(map(str, sizes))})"
        )


def measured_files(pattern: str) -> list[str]:
    """The files a ``measured.spectra`` glob pattern matches, sorted."""
    import glob

    return sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


def _check_input_bins(
    n_channels: int, settings: PreprocessSettings, section: Mapping[str, Any]
) -> None:
    """ConfigError if dropping and merging channels leaves no bin of a spectrum of
    ``n_channels`` (the networks take any length; pruning is checked on the data)."""

    def origin(key: str) -> str:
        return "" if key in section else " (the technique's default)"

    first, merge = settings.first_channel, settings.merge
    if first >= n_channels:
        raise ConfigError(
            f"preprocessing.first_channel: {first}{origin('first_channel')} drops every "
            f"channel of the technique's {n_channels}-channel spectra; expected below "
            f"{n_channels}"
        )
    bins = (n_channels - first) // merge
    if bins < 1:
        raise ConfigError(
            f"preprocessing.merge: {merge}{origin('merge')} channels per bin leave no bin of "
            f"the {n_channels - first} channels from preprocessing.first_channel {first} on; "
            f"expected at most {n_channels - first}"
        )
