"""Each loss lets gradients reach its inputs and parameters, and falls while learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lookalike.train import LOSSES
from lookalike.train.losses import MultiSimilarityLoss, ProxyAnchorLoss, create_loss

N_CLASSES, DIM, PER_CLASS = 4, 8, 5


def separable_set() -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy points around one centre per class, seen through a random linear map."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(N_CLASSES, 16, generator=generator) * 2
    labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    points = centres[labels] + torch.randn(len(labels), 16, generator=generator)
    return points, labels


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_reach_embeddings_and_loss_parameters(name: str) -> None:
    torch.manual_seed(0)
    _, labels = separable_set()
    raw = torch.randn(len(labels), DIM, requires_grad=True)
    loss_fn = create_loss(name, N_CLASSES, DIM)
    loss = loss_fn(F.normalize(raw, dim=1), labels)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert raw.grad is not None and raw.grad.abs().sum() > 0
    for param in loss_fn.parameters():  # proxies, the classification layer
        assert param.grad is not None and param.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSSES)
def test_loss_falls_while_a_small_network_learns(name: str) -> None:
    torch.manual_seed(0)
    points, labels = separable_set()
    net = torch.nn.Linear(16, DIM)
    loss_fn = create_loss(name, N_CLASSES, DIM)
    optimizer = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=0.05)
    losses = []
    for _ in range(30):
        loss = loss_fn(F.normalize(net(points), dim=1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # and what it learned is what retrieval needs: the nearest neighbour has the same label
    with torch.no_grad():
        vectors = F.normalize(net(points), dim=1)
        sim = vectors @ vectors.T - 2 * torch.eye(len(labels))
        assert (labels[sim.argmax(dim=1)] == labels).float().mean() == 1.0


def test_multi_similarity_is_zero_when_pairs_are_already_separated() -> None:
    # two labels on opposite unit vectors: no pair is mined, nothing left to learn
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert float(MultiSimilarityLoss()(embeddings, labels)) == pytest.approx(0.0, abs=1e-6)


def test_proxy_anchor_prefers_embeddings_at_their_proxy() -> None:
    loss_fn = ProxyAnchorLoss(2, 2)
    with torch.no_grad():
        loss_fn.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    labels = torch.tensor([0, 1])
    right = loss_fn(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), labels)
    wrong = loss_fn(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), labels)
    assert right.item() < wrong.item()


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        create_loss("triplet", 2, 2)
