"""The multi-label networks of Annys, Jannis & Verbeeck 2023 (U-Net, ViT, VGG) and their
loss (binary cross-entropy + macro soft F1): registry, shapes, sizes, checks, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch.nn import functional as F  # noqa: N812

from specinv.config import ConfigError
from specinv.models import MODELS, bce_soft_f1_loss, model_spec, soft_f1_loss
from specinv.training.lightning import InverseModel

KINDS = ("unet", "vit", "vgg")
L, N_LABELS = 3072, 80


def n_parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def small(kind: str, input_length: int = L, n_outputs: int = N_LABELS) -> torch.nn.Module:
    spec = model_spec({"kind": kind, "architecture": "small"}, "multilabel")
    assert spec["kind"] == kind
    return MODELS[kind].build(spec["architecture"], input_length, n_outputs)


# --- registry, shapes -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_small_networks_give_one_logit_per_label(kind):
    assert MODELS[kind].task == "multilabel"
    net = small(kind)
    assert 10_000 < n_parameters(net) < 100_000  # tens of thousands
    out = net(torch.randn(4, L))
    assert out.shape == (4, N_LABELS) and torch.isfinite(out).all()
    net.eval()
    assert net(torch.randn(1, L)).shape == (1, N_LABELS)


@pytest.mark.parametrize(("kind", "paper"), [("unet", 20e6), ("vit", 2e6), ("vgg", 45e6)])
def test_the_papers_architectures_have_its_parameter_counts(kind, paper):
    spec = model_spec({"kind": kind}, "multilabel")  # annys2023 is the default
    assert (
        spec["architecture"]
        == model_spec({"kind": kind, "architecture": "annys2023"}, "multilabel")["architecture"]
    )
    net = MODELS[kind].build(spec["architecture"], L, N_LABELS)
    assert abs(n_parameters(net) - paper) / paper < 0.15


@pytest.mark.parametrize("kind", ("unet", "vit"))
def test_lengths_that_do_not_divide_are_padded(kind):
    """3000 channels: not a multiple of the U-Net's 2**3 nor of the ViT's 64-channel
    patches; the networks pad with zeros and give one logit per label."""
    net = small(kind, 3000, 5)
    assert net(torch.randn(3, 3000)).shape == (3, 5)
    with pytest.raises(ValueError, match="expected spectra of 3000 channels, got 3072"):
        net(torch.randn(3, 3072))


def test_vit_class_token_pooling():
    spec = model_spec(
        {"kind": "vit", "architecture": "small", "pool": "cls", "cls_token": True}, "multilabel"
    )
    net = MODELS["vit"].build(spec["architecture"], L, N_LABELS)
    assert net.head.in_features == net.cfg.dim  # the class token alone
    assert net(torch.randn(2, L)).shape == (2, N_LABELS)


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        ("unet", {"filterz": 3}, r"unknown key\(s\) filterz for model kind 'unet'"),
        ("vit", {"patches": 8}, r"unknown key\(s\) patches for model kind 'vit'"),
        ("vgg", {"input_length": 9}, r"unknown key\(s\) input_length for model kind 'vgg'"),
        ("unet", {"architecture": "huge"}, "model.architecture: expected one of annys2023"),
        ("unet", {"depth": 0}, r"model.depth: expected an integer >= 1, got 0"),
        ("unet", {"hidden": [16, 0]}, r"model.hidden: expected positive integers, got \[16, 0\]"),
        ("unet", {"dropout": 1.0}, r"model.dropout: expected a value in \[0, 1\), got 1.0"),
        ("vit", {"dim": 10, "heads": 4}, r"model.dim: expected a multiple of model.heads \(4\)"),
        ("vit", {"pool": "mean"}, "model.pool: expected one of flatten, cls, got 'mean'"),
        ("vit", {"pool": "cls"}, "model.cls_token: expected true with model.pool 'cls'"),
        ("vgg", {"convs": [1, 1]}, r"model.convs: expected one count per block .*\(5\), got 2"),
        ("vgg", {"kernel": 4}, "model.kernel: expected an odd width, got 4"),
    ],
)
def test_bad_architectures_name_the_key(kind, fields, message):
    with pytest.raises(ConfigError, match=message):
        model_spec({"kind": kind, "architecture": "small", **fields}, "multilabel")


def test_the_networks_solve_the_multilabel_task_only():
    for kind in KINDS:
        with pytest.raises(ConfigError, match=f"model.kind: '{kind}' solves multilabel"):
            model_spec({"kind": kind}, "regression")


# --- loss -------------------------------------------------------------------------------


def test_soft_f1_of_perfect_confident_predictions_is_zero():
    y = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.float64)  # every label
    assert float(soft_f1_loss(y.clone(), y)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_f1_loss(1 - y, y)) == pytest.approx(1.0)  # all wrong
    logits = 40 * (2 * y - 1)  # confident
    assert float(bce_soft_f1_loss(logits, y)) == pytest.approx(0.0, abs=1e-6)


def test_soft_f1_equals_the_formula_and_stays_in_0_1():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        p = torch.rand(16, 7, generator=g, dtype=torch.float64)
        y = (torch.rand(16, 7, generator=g) < 0.3).double()
        loss = float(soft_f1_loss(p, y))
        assert 0.0 <= loss <= 1.0
        pn, yn = p.numpy(), y.numpy()
        tp, fp = (pn * yn).sum(0), (pn * (1 - yn)).sum(0)
        fn = ((1 - pn) * yn).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + 1e-7)
        assert loss == pytest.approx(1 - f1.mean(), rel=1e-12)


def test_a_label_absent_from_the_batch_has_a_finite_gradient():
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # label 1 absent
    for p0 in (torch.rand(3, 2), torch.zeros(3, 2)):  # also: nothing predicted at all
        p = p0.clone().requires_grad_(True)
        loss = soft_f1_loss(p, y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(p.grad).all()
        assert (p.grad[:, 1] == 0).all()  # its F1 is 0 whatever is predicted
    # it adds 1/n_labels to the loss of perfect predictions
    assert float(soft_f1_loss(y.clone(), y)) == pytest.approx(0.5, abs=1e-6)
    logits = torch.zeros(3, 2, requires_grad=True)
    bce_soft_f1_loss(logits, y).backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[:, 1] > 0).all()  # BCE: push down


@pytest.mark.parametrize("kind", KINDS)
def test_the_kinds_train_on_bce_plus_soft_f1(kind):
    logits = torch.randn(8, 5)
    y = (torch.rand(8, 5) < 0.5).float()
    expected = F.binary_cross_entropy_with_logits(logits, y) + soft_f1_loss(logits.sigmoid(), y)
    assert torch.allclose(MODELS[kind].loss(logits, y), expected)
    module = InverseModel(
        kind,
        model_spec({"kind": kind, "architecture": "small"}, "multilabel")["architecture"],
        L,
        5,
    )
    assert torch.isfinite(module.batch_loss((torch.randn(4, L), y[:4])))


def test_the_cnn_classifier_keeps_its_binary_cross_entropy():
    logits, y = torch.randn(8, 5), (torch.rand(8, 5) < 0.5).float()
    assert torch.allclose(
        MODELS["classifier"].loss(logits, y), F.binary_cross_entropy_with_logits(logits, y)
    )


@pytest.mark.parametrize("kind", ("classifier", *KINDS))
def test_prediction_averages_the_members_probabilities(kind):
    processed = xr.Dataset(
        {
            "labels": (("sample", "label"), np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)),
            "params": (("sample", "param"), np.zeros((2, 1))),
        },
        coords={"sample": [0, 1], "label": ["B", "C", "N"], "param": ["t"]},
    )
    members = [torch.randn(2, 3), torch.randn(2, 3)]
    pred = MODELS[kind].prediction(members, processed, np.zeros(1), np.ones(1))
    expected = (members[0].double().sigmoid() + members[1].double().sigmoid()) / 2
    assert np.allclose(pred["probability"].values, expected.numpy())
    assert (pred["true"].values == processed["labels"].values).all()
    assert list(pred["label"].values) == ["B", "C", "N"]


# --- learning ---------------------------------------------------------------------------

PEAKS = (400, 1500, 2600)


def peaks(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectra of L channels with noise and, at each of 3 positions (± 5 channels), a peak
    (the same Gaussian everywhere) with probability 1/2; labels: which positions have one.
    Only a network that knows where a feature is can tell the labels apart (global
    pooling over energy could count the peaks, not name them)."""
    y = (torch.rand(n, len(PEAKS), generator=g) < 0.5).float()
    channel = torch.arange(L, dtype=torch.float32)
    x = 0.02 * torch.randn(n, L, generator=g)
    for j, position in enumerate(PEAKS):
        centre = position + torch.randint(-5, 6, (n, 1), generator=g)
        x += y[:, j : j + 1] * torch.exp(-0.5 * ((channel - centre) / 4.0) ** 2)
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_small_networks_learn_where_the_peaks_are(kind):
    """150 AdamW steps of 16 fresh spectra (a few seconds per network on one CPU core)."""
    kind_ = MODELS[kind]
    net = small(kind, L, len(PEAKS))
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        x, y = peaks(16, g)
        loss = kind_.loss(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    x, y = peaks(256, torch.Generator().manual_seed(99))
    with torch.no_grad():
        logits = net(x)
    assert float(kind_.loss(logits, y)) < 0.05  # from ~1.2 untrained
    assert float(((logits > 0).float() == y).float().mean()) > 0.99


def test_mixed_ensembles_are_checked_member_by_member():
    from specinv.training.settings import member_model_settings

    members = [{"kind": "vit", "architecture": "small"}, {"kind": "unet", "architecture": "small"}]
    specs = member_model_settings({"model": {"members": members}}, "multilabel")
    assert [s["kind"] for s in specs] == ["vit", "unet"]
    plain = member_model_settings(
        {"model": {"kind": "vit", "architecture": "small"}, "training": {"ensemble": 3}},
        "multilabel",
    )
    assert len(plain) == 3 and all(s == plain[0] for s in plain)
    bad = [members[0], {"kind": "unet", "architecture": "huge"}]
    with pytest.raises(ConfigError, match=r"model.members\[1\].architecture: expected one of"):
        member_model_settings({"model": {"members": bad}}, "multilabel")
    with pytest.raises(ConfigError, match="expected either members .* or kind, got both"):
        member_model_settings({"model": {"members": members, "kind": "vit"}}, "multilabel")
    with pytest.raises(ConfigError, match="training.ensemble: model.members lists 2 networks"):
        member_model_settings(
            {"model": {"members": members}, "training": {"ensemble": 3}}, "multilabel"
        )
    with pytest.raises(ConfigError, match=r"model.members\[0\].kind: 'mdn' solves regression"):
        member_model_settings({"model": {"members": [{"kind": "mdn"}]}}, "multilabel")
