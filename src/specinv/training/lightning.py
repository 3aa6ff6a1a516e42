"""PyTorch Lightning wrappers: one LightningModule for every kind of inverse model (network,
loss and prediction from the registry :data:`specinv.models.MODELS`), preprocessed splits
as a LightningDataModule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..data.io import read_dataset
from ..data.preprocess import SpectrumTransform
from ..models import model_kind

#: Generator stream of the training noise re-drawn each epoch (the datasets use 1 and 2).
RESAMPLED_NOISE_STREAM = 3


class InverseModel(pl.LightningModule):
    """A network of the model registry trained on its kind's loss with AdamW.

    Args:
        kind: registry name of the model (``mdn``, ``cnn``, ``classifier``).
        architecture: the kind's architecture fields (e.g. of
            :class:`~specinv.models.MDNConfig`) without the sizes.
        input_length, n_targets: features per spectrum and targets per spectrum.
        lr: learning rate; weight_decay: AdamW's decoupled weight decay.
    """

    def __init__(
        self,
        kind: str,
        architecture: Mapping[str, Any],
        input_length: int,
        n_targets: int,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.kind = model_kind(kind)
        self.net = self.kind.build(architecture, input_length, n_targets)

    def forward(self, x: torch.Tensor):
        return self.net(x)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        return self.kind.loss(self.net(x), y)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_step=False, on_epoch=True, prog_bar=True)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self.net(batch[0])

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )


def load_xy(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features ``x`` and scaled targets ``y`` of a preprocessed split (the first ``limit``)."""
    ds = read_dataset(path)
    n = ds.sizes["sample"] if limit is None else limit
    if n > ds.sizes["sample"]:
        raise ValueError(f"{path}: {n} spectra requested, the split has {ds.sizes['sample']}")
    return ds["x"].values[:n], ds["y"].values[:n]


class ProcessedData(pl.LightningDataModule):
    """Training (the first ``n_train`` spectra) and validation splits as tensors."""

    def __init__(
        self,
        train: str,
        validation: str,
        n_train: int | None = None,
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters("train", "validation", "n_train", "batch_size", "seed")
        self._train = self._val = None

    @property
    def input_length(self) -> int:
        self.setup()
        return self._train.tensors[0].shape[1]

    @property
    def n_targets(self) -> int:
        self.setup()
        return self._train.tensors[1].shape[1]

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:
            h = self.hparams
            self._train = TensorDataset(*map(torch.as_tensor, load_xy(h.train, h.n_train)))
            self._val = TensorDataset(*map(torch.as_tensor, load_xy(h.validation)))

    def train_dataloader(self):
        g = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(
            self._train, batch_size=self.hparams.batch_size, shuffle=True, generator=g
        )

    def val_dataloader(self):
        return DataLoader(self._val, batch_size=4 * self.hparams.batch_size)


class ResampledNoiseData(ProcessedData):
    """Training spectra with their noise drawn afresh every epoch.

    The same ``n_train`` parameter sets (and their noise-free spectra ``expected`` [n, C])
    are seen every epoch, each time with a new noise realisation of the technique's noise
    model (``add_noise(expected [n, C], rng) -> counts``), preprocessed by the saved
    ``transform``; so the network cannot learn the noise of a fixed set of spectra.  The
    noise of stage ``stage`` and epoch e comes from a generator seeded by (seed,
    RESAMPLED_NOISE_STREAM, stage, e): reruns and resumed runs see the same noise.  The
    validation split keeps its stored (fixed) noise, so validation losses stay comparable.
    Use with ``Trainer(reload_dataloaders_every_n_epochs=1)``.
    """

    def __init__(
        self,
        train: str,
        validation: str,
        expected: np.ndarray,
        transform: SpectrumTransform,
        add_noise: Callable[[np.ndarray, np.random.Generator], np.ndarray],
        n_train: int | None = None,
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__(train, validation, n_train, batch_size, seed)
        self.add_noise = add_noise
        if n_train is not None and len(expected) != n_train:
            raise ValueError(f"expected spectra: {len(expected)} rows, n_train is {n_train}")
        self.expected = np.asarray(expected, dtype=np.float64)
        self.transform = transform
        self.stage = 0

    def noisy_features(self, epoch: int) -> np.ndarray:
        """Preprocessed features of the epoch's noisy copies of the training spectra."""
        rng = np.random.default_rng([self.hparams.seed, RESAMPLED_NOISE_STREAM, self.stage, epoch])
        return self.transform.features(self.add_noise(self.expected, rng))

    def train_dataloader(self):
        self.setup()
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        x = torch.as_tensor(self.noisy_features(epoch))
        g = torch.Generator().manual_seed(self.hparams.seed + 7919 * self.stage + epoch)
        return DataLoader(
            TensorDataset(x, self._train.tensors[1]),
            batch_size=self.hparams.batch_size,
            shuffle=True,
            generator=g,
        )
