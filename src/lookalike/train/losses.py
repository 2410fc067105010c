"""Metric-learning losses: embeddings of the same label pulled together, others pushed apart.

Every loss takes ``embeddings`` float32 (n, d), L2-normalised, and ``labels`` int64 (n,) with
values in ``0 .. n_classes-1``, and returns a scalar. Three families, one each:

- pair-based: :class:`MultiSimilarityLoss` compares the embeddings of a batch with each other;
- proxy-based: :class:`ProxyAnchorLoss` compares them with one learned proxy per label;
- the course's: :class:`MeanSquaredErrorLoss`, a fully connected classification layer whose
  softmax scores are compared with one-hot targets by the mean squared error.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lookalike.train import LOSSES


def _log1p_sum_exp(x: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """``log(1 + sum(exp(x)))`` over the entries where ``keep``, computed stably."""
    x = x.masked_fill(~keep, -math.inf)
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.logsumexp(torch.cat([zero, x], dim=dim), dim=dim)


class MultiSimilarityLoss(nn.Module):
    """Multi-Similarity loss with its pair mining (Wang et al., CVPR 2019).

    A positive pair is kept when less similar than the hardest negative plus ``epsilon``, a
    negative when more similar than the hardest positive minus ``epsilon``; kept pairs are
    weighted by how far they are from ``base`` (soft-plus of scaled similarities).
    """

    def __init__(
        self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, epsilon: float = 0.1
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.base, self.epsilon = alpha, beta, base, epsilon

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = embeddings @ embeddings.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos, neg = same & ~eye, ~same
        with torch.no_grad():
            hardest_neg = sim.masked_fill(~neg, -math.inf).amax(dim=1, keepdim=True)
            hardest_pos = sim.masked_fill(~pos, math.inf).amin(dim=1, keepdim=True)
        keep_pos = pos & (sim - self.epsilon < hardest_neg)
        keep_neg = neg & (sim + self.epsilon > hardest_pos)
        pos_loss = _log1p_sum_exp(-self.alpha * (sim - self.base), keep_pos, 1) / self.alpha
        neg_loss = _log1p_sum_exp(self.beta * (sim - self.base), keep_neg, 1) / self.beta
        anchors = pos.any(dim=1)  # an image alone with its label in the batch has no pair
        if not anchors.any():
            return sim.sum() * 0.0
        return (pos_loss + neg_loss)[anchors].mean()


class ProxyAnchorLoss(nn.Module):
    """Proxy-Anchor loss (Kim et al., CVPR 2020): one learned proxy per label, each proxy an
    anchor that pulls its label's embeddings and pushes the others, weighted by hardness.

    ``proxies`` (n_classes, dim) learn best with a larger learning rate than the network
    (the paper uses 100x); see :attr:`lr_scale`.
    """

    lr_scale = 100.0

    def __init__(self, n_classes: int, dim: int, alpha: float = 32.0, margin: float = 0.1) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.empty(n_classes, dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")
        self.alpha, self.margin = alpha, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = embeddings @ F.normalize(self.proxies, dim=1).T  # (n, n_classes)
        positive = F.one_hot(labels, len(self.proxies)).bool()
        pos_term = _log1p_sum_exp(-self.alpha * (cos - self.margin), positive, 0)
        neg_term = _log1p_sum_exp(self.alpha * (cos + self.margin), ~positive, 0)
        with_positives = positive.any(dim=0)
        return pos_term[with_positives].mean() + neg_term.mean()


class MeanSquaredErrorLoss(nn.Module):
    """The course's loss: a fully connected layer scores each label, softmax turns the scores
    into probabilities, and the mean squared error to the one-hot target is minimised.

    The classification layer is thrown away after training; the embedding it read is kept.
    """

    lr_scale = 1.0

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.fully_connected = nn.Linear(dim, n_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probabilities = self.fully_connected(embeddings).softmax(dim=1)
        one_hot = F.one_hot(labels, probabilities.shape[1]).to(probabilities.dtype)
        return F.mse_loss(probabilities, one_hot)


def create_loss(name: str, n_classes: int, dim: int) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`) for ``n_classes`` labels of ``dim``-d
    embeddings."""
    if name == "multi_similarity":
        return MultiSimilarityLoss()
    if name == "proxy_anchor":
        return ProxyAnchorLoss(n_classes, dim)
    if name == "mse":
        return MeanSquaredErrorLoss(n_classes, dim)
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
