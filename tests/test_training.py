"""Staged training, resuming after an interruption, and predictions in physical units."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import yaml

from specinv.config import ConfigError
from specinv.data import (
    SpectrumTransform,
    dataset_config,
    expected_spectra,
    read_dataset,
)
from specinv.models import mixture_nll
from specinv.training import (
    ResampledNoiseData,
    TrainingDiverged,
    TrainingSettings,
    median_relative_error,
    model_settings,
    noise_free_training_spectra,
    predict,
    technique_noise,
    train_staged,
)
from specinv.training.lightning import InverseModel, load_xy

TINY = Path(__file__).parent / "data" / "tiny.yaml"
SMALL_NET = {
    "filters": (8, 8),
    "kernels": (5, 3),
    "strides": (2, 2),
    "gru_hidden": 16,
    "gru_layers": 1,
    "sigma_hidden": (16,),
}


@pytest.fixture()
def processed(tiny_processed) -> Path:
    return tiny_processed


def train_small(processed: Path, out: Path, training: TrainingSettings, model=SMALL_NET, **kw):
    """Staged training on the first 200 spectra of the tiny processed data."""
    return train_staged(
        processed / "train.nc",
        processed / "validation.nc",
        out,
        200,
        model_settings({"model": model}),
        training,
        **kw,
    )


def settings(**kw) -> TrainingSettings:
    base = dict(
        learning_rates=(1e-3, 5e-4), epochs=6, patience=20, batch_size=32, progress_bar=False
    )
    return TrainingSettings(**{**base, **kw})


def test_staged_training_and_prediction(processed, tmp_path):
    out = tmp_path / "model"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train_small(processed, out, settings())
    # the stage folders hold their fingerprints: no alarm about deleted log files
    assert not [w for w in caught if "logs directory" in str(w.message)]
    assert (out / "model.ckpt").exists() and (out / "summary.json").exists()
    assert [s["epochs"] for s in summary["stages"]] == [3, 3]
    assert summary["stages"][1]["learning_rate"] == 5e-4
    assert summary["best_val_loss"] == min(s["best_val_loss"] for s in summary["stages"])
    log = pd.read_csv(out / "stage1" / "metrics.csv")
    assert log["val_loss"].notna().sum() == 3  # one row per epoch
    transform = SpectrumTransform.load(processed / "transform.json")
    pred = predict(out / "model.ckpt", processed / "test.nc", transform)
    assert pred["mu"].shape == (40, 1, 4) and pred["mean"].shape == (40, 4)
    assert (pred["std"].values > 0).all()
    assert pred["mean"].attrs["units"] == "1e15 atoms/cm2"
    # physical units: means within (a margin around) the prior box
    assert 0 < np.median(pred["mean"].values) < 6000
    mre = median_relative_error(pred)
    assert set(mre) == {"layer1:W", "layer1:D", "layer2:W", "layer2:D"}
    assert all(np.isfinite(v) for v in mre.values())


def test_an_ensemble_pools_its_networks_into_one_mixture(processed, tmp_path):
    """training.ensemble: networks with seeds seed, seed + 1 predict one mixture of weight
    1/2 each: its mean is their mean, its variance theirs plus their disagreement."""
    ensemble = settings(learning_rates=(1e-3,), epochs=2, ensemble=2, seed=5)
    transform = SpectrumTransform.load(processed / "transform.json")
    paths, single = [], []
    for k in range(2):
        member = ensemble.member(k)
        assert member.seed == 5 + k and member.ensemble == 2
        out = tmp_path / f"member{k}"
        train_small(processed, out, member)
        paths.append(out / "model.ckpt")
        single.append(predict(paths[-1], processed / "test.nc", transform))
    pooled = predict(paths, processed / "test.nc", transform)
    assert pooled.attrs["ensemble"] == 2 and pooled["mu"].shape == (40, 2, 4)
    np.testing.assert_allclose(np.exp(pooled["log_pi"].values), 0.5)
    means = np.stack([p["mean"].values for p in single])
    assert np.abs(means[0] - means[1]).max() > 0  # other seeds, other networks
    np.testing.assert_allclose(pooled["mean"].values, means.mean(0), rtol=1e-12)
    variance = np.stack([p["std"].values ** 2 for p in single]).mean(0) + means.var(0)
    np.testing.assert_allclose(pooled["std"].values ** 2, variance, rtol=1e-9)
    np.testing.assert_array_equal(pooled["true"].values, single[0]["true"].values)
    with pytest.raises(ValueError, match="ensemble member 2"):
        ensemble.member(2)
    with pytest.raises(ValueError, match="checkpoints"):
        predict([], processed / "test.nc", transform)


def test_noise_resampled_every_epoch(processed, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    cfg = dataset_config(config)
    transform = SpectrumTransform.load(processed / "transform.json")
    train = read_dataset(processed / "train.nc")
    expected = expected_spectra(
        cfg.build_technique(), train["params"].values[:200], 64, progress=False
    )
    data = ResampledNoiseData(
        str(processed / "train.nc"),
        str(processed / "validation.nc"),
        expected,
        transform,
        technique_noise(cfg),
        200,
        32,
        seed=0,
    )
    data.setup()
    first, again, second = data.noisy_features(0), data.noisy_features(0), data.noisy_features(1)
    assert np.array_equal(first, again)  # reproducible (resumable)
    assert not np.array_equal(first, second)  # new noise every epoch
    data.stage = 1
    assert not np.array_equal(first, data.noisy_features(0))  # and every stage
    # the noisy copies scatter around the stored spectra like fresh Poisson draws: the mean
    # over epochs of the features tends to the features of the noise-free spectra
    mean = np.mean([data.noisy_features(e) for e in range(20)], axis=0)
    assert np.abs(mean - transform.features(np.rint(expected).astype(np.int32))).mean() < (
        np.abs(first - transform.features(np.rint(expected).astype(np.int32))).mean() / 3
    )
    with pytest.raises(ValueError, match="resample_noise"):
        train_small(processed, tmp_path / "m", settings(resample_noise=True))
    summary = train_small(
        processed,
        tmp_path / "m",
        settings(resample_noise=True, epochs=4),
        expected=expected,
        transform=transform,
        add_noise=technique_noise(cfg),
    )
    assert [s["epochs"] for s in summary["stages"]] == [2, 2]
    assert np.isfinite(summary["best_val_loss"])


class _Crash(pl.Callback):
    """Raises at the start of the given epoch of the stage with the given learning rate."""

    def __init__(self, lr: float, epoch: int):
        self.lr, self.epoch = lr, epoch

    def on_train_epoch_start(self, trainer, module):
        if module.hparams.lr == self.lr and trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_training_resumes_after_an_interruption(processed, tmp_path, ema_decay):
    out = tmp_path / "model"
    args = (
        processed / "train.nc",
        processed / "validation.nc",
        out,
        200,
        model_settings({"model": SMALL_NET}),
        settings(ema_decay=ema_decay),
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_staged(*args, callbacks=[_Crash(lr=5e-4, epoch=2)])
    stage1 = out / "stage1" / "done.json"
    assert stage1.exists() and not (out / "stage2" / "done.json").exists()
    assert (out / "stage2" / "checkpoints" / "last.ckpt").exists()
    first = stage1.read_text()
    mtime = stage1.stat().st_mtime_ns
    resumed_from = {}

    class _Watch(pl.Callback):
        def on_train_start(self, trainer, module):
            resumed_from[module.hparams.lr] = trainer.current_epoch

    summary = train_staged(*args, callbacks=[_Watch()])
    assert stage1.read_text() == first and stage1.stat().st_mtime_ns == mtime  # not redone
    assert resumed_from == {5e-4: 2}  # stage 2 restarted at its third epoch
    assert [s["epochs"] for s in summary["stages"]] == [3, 3]
    assert json.loads((out / "summary.json").read_text())["n_train"] == 200


def test_weight_averaging_is_what_is_validated_and_kept(processed, tmp_path):
    """With ``ema_decay`` the checkpoints' weights are the moving average (not the last
    optimizer iterate), and the validation loss logged is that of the average."""
    out = tmp_path / "model"
    train_small(processed, out, settings(ema_decay=0.9, learning_rates=(1e-3,), epochs=3))
    ckpt = torch.load(out / "stage1" / "checkpoints" / "last.ckpt", weights_only=False)
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged)
    # the logged validation loss of the last epoch is that of the averaged weights
    module = InverseModel.load_from_checkpoint(out / "stage1" / "checkpoints" / "last.ckpt")
    module.eval()
    x, y = (torch.as_tensor(a) for a in load_xy(processed / "validation.nc"))
    with torch.no_grad():
        loss = float(mixture_nll(*module(x), y))
    logged = pd.read_csv(out / "stage1" / "metrics.csv")["val_loss"].dropna().iloc[-1]
    assert loss == pytest.approx(logged, rel=1e-4)


def test_bad_training_settings():
    with pytest.raises(ValueError, match="training.learning_rates"):
        TrainingSettings.from_config({"training": {"learning_rates": []}})
    with pytest.raises(ValueError, match="training.ema_decay"):
        TrainingSettings.from_config({"training": {"ema_decay": 1.0}})
    with pytest.raises(ValueError, match="training.ensemble: expected >= 1"):
        TrainingSettings.from_config({"training": {"ensemble": 0}})
    with pytest.raises(ValueError, match="unknown key"):
        TrainingSettings.from_config({"training": {"epochz": 3}})
    with pytest.raises(ValueError, match="model.architecture"):
        model_settings({"model": {"architecture": "Z"}})
    with pytest.raises(ValueError, match="model: unknown key.*gru_hiden"):
        model_settings({"model": {"gru_hiden": 3}})
    with pytest.raises(ValueError, match="model.kind: 'classifier' solves multilabel"):
        model_settings({"model": {"kind": "classifier"}}, "regression")
    with pytest.raises(ValueError, match="filters, kernels and strides need the same"):
        model_settings({"model": {"filters": [8, 8, 8]}})
    with pytest.raises(ValueError, match="model.kind: expected one of mdn, cnn, classifier"):
        model_settings({"model": {"kind": "svm"}})
    config = yaml.safe_load(TINY.read_text())
    config["data"]["noise"] = "none"
    with pytest.raises(ValueError, match="resample_noise: needs a noise model"):
        noise_free_training_spectra(dataset_config(config), "never-read.nc", 10)


def test_stages_of_other_settings_are_not_reused(processed, tmp_path):
    out = tmp_path / "model"
    args = (
        processed / "train.nc",
        processed / "validation.nc",
        out,
        200,
        model_settings({"model": SMALL_NET}),
    )
    train_staged(*args, settings())
    stage1, stage2 = out / "stage1" / "done.json", out / "stage2" / "done.json"
    first1, first2 = stage1.read_text(), stage2.read_text()
    mtime1 = stage1.stat().st_mtime_ns
    # another learning rate for stage 2 only: stage 1 is reused, stage 2 trained afresh
    changed = settings()
    rates = (changed.learning_rates[0], changed.learning_rates[1] / 2)
    summary = train_staged(*args, dataclasses.replace(changed, learning_rates=rates))
    assert stage1.read_text() == first1 and stage1.stat().st_mtime_ns == mtime1
    assert stage2.read_text() != first2
    assert [s["learning_rate"] for s in summary["stages"]] == list(rates)
    # another batch size changes every stage
    train_staged(*args, dataclasses.replace(changed, batch_size=changed.batch_size * 2))
    assert stage1.stat().st_mtime_ns != mtime1
    fingerprint = json.loads((out / "stage1" / "fingerprint.json").read_text())
    assert fingerprint["settings"]["batch_size"] == changed.batch_size * 2
    assert fingerprint["data"]["train"]["split"] == "train"


@pytest.mark.parametrize("kind, ensemble", [("cnn", 1), ("cnn", 2)])
def test_point_regression_cnn_trains_and_predicts(processed, tmp_path, kind, ensemble):
    """Another kind of the model registry through the same staged training and
    ``trainer.predict``: point estimates in physical units, a spread only for an ensemble."""
    net = {"kind": kind, "architecture": "small"}
    transform = SpectrumTransform.load(processed / "transform.json")
    paths = []
    for k in range(ensemble):
        out = tmp_path / f"member{k}"
        summary = train_small(processed, out, settings(epochs=4, seed=k), model=net)
        assert summary["architecture"]["kind"] == kind and np.isfinite(summary["best_val_loss"])
        paths.append(out / "model.ckpt")
    pred = predict(paths, processed / "test.nc", transform)
    assert pred.attrs["model_kind"] == "cnn" and pred.attrs["model_label"] == "CNN"
    assert pred["mean"].shape == (40, 4) and "log_pi" not in pred
    assert np.isfinite(pred["mean"].values).all()
    assert np.isnan(pred["std"].values).all() == (ensemble == 1)
    # predict goes through the module's predict_step: the same as calling the network
    module = InverseModel.load_from_checkpoint(paths[0])
    module.eval()
    x = torch.as_tensor(read_dataset(processed / "test.nc")["x"].values)
    with torch.no_grad():
        z = module(x).double().numpy()
    if ensemble == 1:
        np.testing.assert_allclose(pred["mean"].values, transform.unscale_targets(z), rtol=1e-6)


class _Killed(Exception):
    """The simulated kill of a training process."""


class _Kill(pl.Callback):
    """Simulates a kill during epoch ``epoch`` (counted from 0) of stage ``stage`` (counted
    from 1): ``when="mid-epoch"`` after the epoch's second optimizer step, ``"validated"``
    after its validation but before its checkpoint; either way the stage's last checkpoint
    is that of the epoch before."""

    def __init__(self, stage: int, epoch: int, when: str):
        self.stage, self.epoch, self.when = stage, epoch, when

    def _here(self, trainer) -> bool:
        return trainer.logger.name == f"stage{self.stage}" and trainer.current_epoch == self.epoch

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.when == "mid-epoch" and batch_idx == 1 and self._here(trainer):
            raise _Killed(f"stage {self.stage}, epoch {self.epoch}")

    def on_train_epoch_end(self, trainer, module):
        if self.when == "validated" and self._here(trainer):
            raise _Killed(f"stage {self.stage}, epoch {self.epoch}")


def _weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The weights of a checkpoint: its state dict and, with weight averaging, the raw
    weights of the optimizer's iterate too."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return {key: ckpt[key] for key in ("state_dict", "current_model_state") if key in ckpt}


def assert_same_weights(path: Path, reference: Path) -> None:
    """Every tensor of both checkpoints exactly equal (torch.equal)."""
    got, expected = _weights(path), _weights(reference)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key].keys() == expected[key].keys()
        differ = [n for n in expected[key] if not torch.equal(got[key][n], expected[key][n])]
        assert not differ, f"{path} vs {reference}: {key} differs in {differ}"


@pytest.fixture()
def resampling(processed) -> dict:
    """The keyword arguments of ``train_staged`` for ``training.resample_noise``."""
    cfg = dataset_config(yaml.safe_load(TINY.read_text()))
    train = read_dataset(processed / "train.nc")
    return {
        "expected": expected_spectra(
            cfg.build_technique(), train["params"].values[:200], 64, progress=False
        ),
        "transform": SpectrumTransform.load(processed / "transform.json"),
        "add_noise": technique_noise(cfg),
    }


@pytest.mark.parametrize(
    "case",
    ["plain", "resampled noise", "dropout and weight averaging"],
)
def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_one(
    processed, tmp_path, resampling, case
):
    """Killed in stage 1 or in stage 2 (mid-epoch, or after an epoch's validation but
    before its checkpoint) and rerun, the training ends with exactly the weights (every
    tensor torch.equal) of an uninterrupted one: the data order, the noise, dropout and the
    averaged weights depend on (seed, stage, epoch) only, or come from the checkpoint."""
    kw, model, training = {}, SMALL_NET, settings()
    if case == "resampled noise":
        kw, training = resampling, settings(resample_noise=True)
    elif case == "dropout and weight averaging":
        model = {"kind": "cnn", "architecture": "small", "hidden": [16], "dropout": 0.3}
        training = settings(ema_decay=0.9)
    reference = tmp_path / "uninterrupted"
    train_small(processed, reference, training, model=model, **kw)
    for stage, epoch, when in [(1, 2, "mid-epoch"), (2, 1, "validated")]:
        out = tmp_path / f"killed-in-stage{stage}"
        with pytest.raises(_Killed):
            train_small(
                processed, out, training, model=model, callbacks=[_Kill(stage, epoch, when)], **kw
            )
        assert not (out / f"stage{stage}" / "done.json").exists()
        train_small(processed, out, training, model=model, **kw)
        assert_same_weights(out / "model.ckpt", reference / "model.ckpt")
        for k in (1, 2):
            last = f"stage{k}/checkpoints/last.ckpt"
            assert_same_weights(out / last, reference / last)
            # and the same epochs and best score (the callbacks' states resumed)
            got, expected = (
                json.loads((d / f"stage{k}" / "done.json").read_text()) for d in (out, reference)
            )
            for key in ("epochs", "best_val_loss"):
                assert got[key] == expected[key], (k, key)
            metrics = f"stage{k}/metrics.csv"
            pd.testing.assert_frame_equal(
                pd.read_csv(out / metrics), pd.read_csv(reference / metrics)
            )


def test_an_unreadable_last_checkpoint_trains_the_stage_afresh(processed, tmp_path, capsys):
    """A last.ckpt truncated (a kill while it was copied across file systems) is not
    resumed from: the stage is trained afresh, to the weights of an uninterrupted run."""
    training = settings(learning_rates=(1e-3,), epochs=4)
    out, reference = tmp_path / "killed", tmp_path / "uninterrupted"
    with pytest.raises(_Killed):
        train_small(processed, out, training, callbacks=[_Kill(1, 2, "validated")])
    last = out / "stage1" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    train_small(processed, out, training)
    assert "last.ckpt: unreadable checkpoint" in capsys.readouterr().err
    train_small(processed, reference, training)
    assert_same_weights(out / "model.ckpt", reference / "model.ckpt")


def test_a_resumed_stage_keeps_the_metrics_of_the_epochs_before_the_kill(processed, tmp_path):
    """Killed after the validation of epoch 2 (its row logged, its checkpoint not written)
    and resumed from epoch 1's checkpoint: metrics.csv keeps the rows of epochs 0 and 1 as
    they were, drops epoch 2's, and then has exactly one row set (validation, training) per
    epoch — the file of an uninterrupted training."""
    training = settings(learning_rates=(1e-3,), epochs=4)
    out, reference = tmp_path / "killed", tmp_path / "uninterrupted"
    with pytest.raises(_Killed):
        train_small(processed, out, training, callbacks=[_Kill(1, 2, "validated")])
    before = pd.read_csv(out / "stage1" / "metrics.csv")
    assert before.loc[before["val_loss"].notna(), "epoch"].tolist() == [0, 1, 2]
    train_small(processed, out, training)
    after = pd.read_csv(out / "stage1" / "metrics.csv")
    for column in ("val_loss", "train_loss"):
        assert after.loc[after[column].notna(), "epoch"].tolist() == [0, 1, 2, 3], column
    kept = before[before["epoch"] <= 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(after[after["epoch"] <= 1].reset_index(drop=True), kept)
    train_small(processed, reference, training)
    pd.testing.assert_frame_equal(after, pd.read_csv(reference / "stage1" / "metrics.csv"))


@pytest.mark.parametrize(
    "rates, stage, loss",
    [
        ((1e6,), 1, "nan"),  # non-finite in the first epoch
        ((1e-3, 1e2), 2, r"\d\.\d+e\+\d\d"),  # finite, but 1e10 and more
    ],
)
def test_a_diverging_training_stops_with_a_clear_error(processed, tmp_path, rates, stage, loss):
    """A non-finite loss, or a validation loss far above that of the weights the stage
    started from, stops the training with an error naming the stage, the epoch, the loss
    and training.learning_rates; no model.ckpt or summary.json is written."""
    out = tmp_path / "model"
    (out).mkdir()
    (out / "model.ckpt").write_text("left by an earlier training")
    with pytest.raises(TrainingDiverged) as error:
        train_small(processed, out, settings(learning_rates=rates))
    message = str(error.value)
    assert isinstance(error.value, ConfigError) and "\n" not in message
    assert re.search(rf"stage {stage} .*epoch 0: validation loss {loss}", message), message
    assert f"training.learning_rates: expected lower rates, got {list(rates)}" in message
    assert not (out / "model.ckpt").exists() and not (out / "summary.json").exists()
    assert not (out / f"stage{stage}" / "done.json").exists()
