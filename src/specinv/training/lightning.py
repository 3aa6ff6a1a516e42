"""PyTorch Lightning wrappers: one LightningModule for every kind of inverse model (network,
loss and prediction from the registry :data:`specinv.models.MODELS`), preprocessed splits
as a LightningDataModule.

Everything random in training is a function of (seed, stage, epoch), so that a training
killed and resumed from its last checkpoint ends with the weights of an uninterrupted one:
the order of the training spectra (:class:`EpochShuffle`), their resampled noise
(:class:`ResampledNoiseData`) and the global generators of torch, numpy and Python, used
e.g. by dropout (:class:`EpochSeeding`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ..data.io import read_dataset
from ..data.preprocess import SpectrumTransform
from ..models import model_kind

#: Generator stream of the training noise re-drawn each epoch (the datasets use 1 and 2).
RESAMPLED_NOISE_STREAM = 3
#: Generator stream of the order of the training spectra in each epoch.
SHUFFLE_STREAM = 4
#: Generator stream of the seeds of the global generators at the start of each epoch.
GLOBAL_STREAM = 5
#: Generator stream of the training loader's own generator (its workers' base seeds).
LOADER_STREAM = 6


def epoch_seed(seed: int, stream: int, stage: int, epoch: int) -> int:
    """A 63-bit seed that is a function of (seed, stream, stage, epoch) only."""
    state = np.random.SeedSequence([seed, stream, stage, epoch]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class EpochShuffle(Sampler[int]):
    """Sample indices ``0 … n − 1`` in a random order that is a function of (seed, stage,
    epoch) only, so that a resumed training sees the order an uninterrupted one sees.

    Lightning calls :meth:`set_epoch` at the start of every training epoch (as for a
    distributed sampler); ``epoch`` is the first epoch's number.
    """

    def __init__(self, n: int, seed: int, stage: int, epoch: int = 0):
        self.n, self.seed, self.stage, self.epoch = n, seed, stage, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        # a generator function: the order is drawn at the first index asked for, after
        # Lightning's set_epoch, even where it creates the loader's iterator before that
        g = torch.Generator().manual_seed(
            epoch_seed(self.seed, SHUFFLE_STREAM, self.stage, self.epoch)
        )
        yield from torch.randperm(self.n, generator=g).tolist()

    def __len__(self) -> int:
        return self.n


def seed_global_generators(seed: int, stage: int, epoch: int) -> None:
    """Seed the global generators of torch (CPU and CUDA), numpy and Python from (seed,
    GLOBAL_STREAM, stage, epoch)."""
    value = epoch_seed(seed, GLOBAL_STREAM, stage, epoch)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)  # noqa: NPY002 (the legacy global one, for code using it)
    random.seed(value)


class EpochSeeding(pl.Callback):
    """Seeds the global generators (:func:`seed_global_generators`) at the start of every
    training epoch of stage ``stage``: what draws from them (dropout, …) then depends on
    (seed, stage, epoch) only, not on what ran before in the process."""

    def __init__(self, seed: int, stage: int):
        self.seed, self.stage = seed, stage

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seed_global_generators(self.seed, self.stage, trainer.current_epoch)


class InverseModel(pl.LightningModule):
    """A network of the model registry trained on its kind's loss with AdamW.

    Args:
        kind: registry name of the model (``mdn``, ``cnn``, ``classifier``, ``unet``,
            ``vit``, ``vgg``).
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

    def batch_loss(self, batch) -> torch.Tensor:
        """The kind's loss of a batch ``(x, y)``."""
        x, y = batch
        return self.kind.loss(self.net(x), y)

    def training_step(self, batch, batch_idx):
        loss = self.batch_loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.batch_loss(batch), on_step=False, on_epoch=True, prog_bar=True)

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
    """Training (the first ``n_train`` spectra) and validation splits as tensors.

    The training spectra come in an order drawn anew for every epoch from (seed, stage,
    epoch) (:class:`EpochShuffle`); ``stage`` is set by the staged training.
    """

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
        self.stage = 0

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

    def _epoch(self) -> int:
        """The epoch about to be trained (0 without a trainer)."""
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _loader(self, dataset: TensorDataset) -> DataLoader:
        """The training loader of ``dataset``, in the order of (seed, stage, epoch).

        It has a generator of its own: without one, every iterator of the loader would draw
        its (worker) base seed from torch's global generator, and Lightning creates the
        first iterator of a loader before ``on_train_epoch_start`` (where the global
        generators are seeded, :class:`EpochSeeding`) but later ones after it, so that
        dropout would see other numbers in a resumed epoch.
        """
        h, epoch = self.hparams, self._epoch()
        return DataLoader(
            dataset,
            batch_size=h.batch_size,
            sampler=EpochShuffle(len(dataset), h.seed, self.stage, epoch),
            generator=torch.Generator().manual_seed(
                epoch_seed(h.seed, LOADER_STREAM, self.stage, epoch)
            ),
        )

    def train_dataloader(self):
        self.setup()
        return self._loader(self._train)

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

    def noisy_features(self, epoch: int) -> np.ndarray:
        """Preprocessed features of the epoch's noisy copies of the training spectra."""
        rng = np.random.default_rng([self.hparams.seed, RESAMPLED_NOISE_STREAM, self.stage, epoch])
        return self.transform.features(self.add_noise(self.expected, rng))

    def train_dataloader(self):
        self.setup()
        x = torch.as_tensor(self.noisy_features(self._epoch()))
        return self._loader(TensorDataset(x, self._train.tensors[1]))
