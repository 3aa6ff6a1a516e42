"""PyTorch Lightning wrappers: the MDN as a LightningModule, preprocessed splits as a
LightningDataModule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..data.io import read_dataset
from ..models import MDNConfig, MixtureDensityNetwork, mixture_nll


class MDNRegressor(pl.LightningModule):
    """Mixture density network trained by the mixture negative log-likelihood (AdamW).

    Args:
        model: architecture as a dict of :class:`~specinv.models.MDNConfig` fields.
        lr: learning rate; weight_decay: AdamW's decoupled weight decay.
    """

    def __init__(self, model: dict, lr: float = 1e-3, weight_decay: float = 1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.net = MixtureDensityNetwork(MDNConfig(**model))

    def forward(self, x: torch.Tensor):
        return self.net(x)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        return mixture_nll(*self.net(x), y)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_step=False, on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)


def load_xy(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features ``x`` and scaled targets ``y`` of a preprocessed split (the first ``limit``)."""
    ds = read_dataset(path)
    n = ds.sizes["sample"] if limit is None else limit
    if n > ds.sizes["sample"]:
        raise ValueError(f"{path}: {n} spectra requested, the split has {ds.sizes['sample']}")
    return ds["x"].values[:n], ds["y"].values[:n]


class ProcessedData(pl.LightningDataModule):
    """Training (the first ``n_train`` spectra) and validation splits as tensors."""

    def __init__(self, train: str, validation: str, n_train: int | None = None,
                 batch_size: int = 256, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self._train = self._val = None

    @property
    def input_length(self) -> int:
        self.setup()
        return self._train.tensors[0].shape[1]

    @property
    def n_params(self) -> int:
        self.setup()
        return self._train.tensors[1].shape[1]

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:
            h = self.hparams
            self._train = TensorDataset(*map(torch.as_tensor, load_xy(h.train, h.n_train)))
            self._val = TensorDataset(*map(torch.as_tensor, load_xy(h.validation)))

    def train_dataloader(self):
        g = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(self._train, batch_size=self.hparams.batch_size, shuffle=True,
                          generator=g)

    def val_dataloader(self):
        return DataLoader(self._val, batch_size=4 * self.hparams.batch_size)
