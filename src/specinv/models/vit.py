"""A 1D vision transformer classifier (``vit``), after Annys, Jannis & Verbeeck 2023 (core-loss
EELS element identification).

The spectrum is cut into non-overlapping patches of ``patch`` channels (tokens), each
embedded linearly to ``dim`` features, plus a learnable position embedding per token (and an
optional learnable class token in front).  ``depth`` pre-norm transformer encoder layers
(multi-head self-attention with ``heads`` heads, an MLP of ``mlp_dim`` with GELU) follow.

Pooling: ``"flatten"`` (default) normalises every token (LayerNorm), flattens all tokens and
maps them with one dense layer to the outputs, so that the output knows which token (which
energy range) a feature came from; ``"cls"`` takes the normalised class token alone (the
usual ViT head), which sees the positions only through attention.

Lengths not divisible by ``patch`` are padded with zeros at the end (the high-energy side,
where the preprocessed spectra are zero-padded anyway): the last token is partly padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .layers import check_dropout, check_sizes

POOLINGS = ("flatten", "cls")


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of the 1D vision transformer.

    Attributes:
        input_length: channels of the input spectrum (L).
        n_outputs: number of outputs (labels).
        patch: channels per token; the spectrum gives ceil(L / patch) tokens.
        dim: features per token (embedding width); a multiple of ``heads``.
        depth: transformer encoder layers.
        heads: attention heads per layer.
        mlp_dim: hidden width of each layer's MLP.
        dropout: dropout of the embeddings, the attention and the MLPs.
        pool: ``"flatten"`` (all tokens, flattened) or ``"cls"`` (the class token).
        cls_token: prepend a learnable class token (needed by ``pool: cls``).
    """

    input_length: int
    n_outputs: int
    patch: int = 16
    dim: int = 96
    depth: int = 6
    heads: int = 8
    mlp_dim: int = 192
    dropout: float = 0.0
    pool: str = "flatten"
    cls_token: bool = False

    def __post_init__(self):
        check_sizes(self, "input_length", "n_outputs", "patch", "dim", "depth", "heads")
        check_sizes(self, "mlp_dim")
        check_dropout(self)
        if self.dim % self.heads:
            raise ValueError(
                f"model.dim: expected a multiple of model.heads ({self.heads}), got {self.dim}"
            )
        if self.pool not in POOLINGS:
            raise ValueError(
                f"model.pool: expected one of {', '.join(POOLINGS)}, got {self.pool!r}"
            )
        if not isinstance(self.cls_token, bool):
            raise ValueError(f"model.cls_token: expected true or false, got {self.cls_token!r}")
        if self.pool == "cls" and not self.cls_token:
            raise ValueError("model.cls_token: expected true with model.pool 'cls', got false")

    @property
    def n_patches(self) -> int:
        """Patch tokens of a spectrum (the input padded to a multiple of ``patch``)."""
        return -(-self.input_length // self.patch)

    @property
    def n_tokens(self) -> int:
        return self.n_patches + int(self.cls_token)

    def to_dict(self) -> dict:
        return asdict(self)


class VisionTransformer1D(nn.Module):
    """x [B, L] -> logits [B, n_outputs]."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.cls_token else None
        self.position = nn.Parameter(torch.randn(1, cfg.n_tokens, cfg.dim) * 0.02)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.dim,
            cfg.heads,
            cfg.mlp_dim,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # no nested-tensor fast path: it is for padding masks, which the spectra do not need
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        width = cfg.dim * (cfg.n_tokens if cfg.pool == "flatten" else 1)
        self.head = nn.Linear(width, cfg.n_outputs)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L] -> the encoded, normalised tokens [B, n_tokens, dim] (class token first)."""
        cfg = self.cfg
        if x.shape[-1] != cfg.input_length:
            raise ValueError(
                f"VisionTransformer1D: expected spectra of {cfg.input_length} channels, "
                f"got {x.shape[-1]}"
            )
        x = F.pad(x, (0, cfg.n_patches * cfg.patch - cfg.input_length))
        h = self.embed(x.reshape(x.shape[0], cfg.n_patches, cfg.patch))
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.dropout(h + self.position)
        return self.norm(self.encoder(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tokens(x)
        return self.head(h.flatten(1) if self.cfg.pool == "flatten" else h[:, 0])


__all__ = ["POOLINGS", "ViTConfig", "VisionTransformer1D"]
