"""The message-passing network of graph tasks, for stacked networks (see trainer.py).

A message-passing neural network (Gilmer et al. 2017) in the form CLRS-30's processors take:
one set of weights applied for a fixed number of rounds.

    h0_i   = x_i W_in + b_in                                   (linear encoder)
    m_ij   = act(h_i A + h_j B + w_ij c + b_m)                 (edge MLP, on every pair)
    a_i    = sum_j or max_j of m_ij over j in N(i) and i itself
    h_i'   = act(h_i U + a_i V + b_u)                          (node MLP)
    y_i    = h_i W_out + b_out                                 (after `rounds` rounds)

The edge MLP's first layer is split into a receiver, a sender and an edge part, so that the
pairs cost elementwise work only (no matmul per pair); the candidate activation runs on every
pair's message and every node's update. Self-loops have edge weight 0 and real edges a
positive weight, so a message knows which it is. Graphs are dense: x packs each node's
features and its row of edge weights, (networks, graphs, nodes, features + nodes).

Batch independence: the sum over neighbours is a fixed tree of exactly rounded adds (the
order depends on the number of nodes alone), a max is exact, and everything else is per
network `baddbmm` or elementwise, as in trainer.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["graph_forward", "graph_params"]

_Act = Callable[[torch.Tensor], torch.Tensor]


def graph_params(gen: torch.Generator, features: int, width: int, d_max: int) -> list[torch.Tensor]:
    """Returns nn.Linear-style initial weights of one network: W_in, b_in, A, B, c, b_m,
    U, V, b_u, W_out, b_out (W_in zero-padded to d_max input features)."""

    def uniform(fan_in: int, *shape: int) -> torch.Tensor:
        bound = 1.0 / math.sqrt(fan_in)
        return (torch.rand(*shape, generator=gen) * 2 - 1) * bound

    w = width
    w_in = uniform(features, features, w)
    if features < d_max:
        w_in = torch.cat([w_in, torch.zeros(d_max - features, w)])
    edge = [uniform(2 * w + 1, *shape) for shape in ((w, w), (w, w), (1, w), (1, w))]
    node = [uniform(2 * w, *shape) for shape in ((w, w), (w, w), (1, w))]
    out = [uniform(w, w, 1), uniform(w, 1, 1)]
    return [w_in, uniform(features, 1, w), *edge, *node, *out]


def _neighbour_sum(m: torch.Tensor) -> torch.Tensor:
    """Returns the sum over dim 3 of (networks, graphs, n, n, width) by pairwise exact adds."""
    # split, not slices: a slice's backward fills a zero tensor of m's full size.
    while m.shape[3] > 1:
        half = m.shape[3] // 2
        low, high, rest = torch.split(m, [half, half, m.shape[3] - 2 * half], dim=3)
        m = torch.cat([low + high, rest], dim=3) if rest.shape[3] else low + high
    return m[:, :, :, 0]


def graph_forward(
    act: _Act, rounds: int, aggregate: str
) -> Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]:
    """Returns forward(x, params) -> (networks, graphs * nodes, 1) for packed graphs x."""

    def forward(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        w_in, b_in, a, b, c, b_m, u, v, b_u, w_out, b_out = params
        nets, graphs, n, _ = x.shape
        d, width = w_in.shape[1], w_in.shape[2]
        feats = x[..., :d].reshape(nets, graphs * n, d)
        weights = x[..., d:]  # (networks, graphs, n, n)
        neighbours = ((weights > 0) | torch.eye(n, dtype=torch.bool, device=x.device))[..., None]
        edge = weights[..., None] * c.view(nets, 1, 1, 1, width)  # (networks, graphs, n, n, w)
        fill = torch.zeros((), device=x.device) if aggregate == "sum" else x.new_tensor(-math.inf)
        h = torch.baddbmm(b_in, feats, w_in)  # (networks, graphs * n, width)
        for _ in range(rounds):
            receiver = torch.baddbmm(b_m, h, a).view(nets, graphs, n, 1, width)
            sender = torch.bmm(h, b).view(nets, graphs, 1, n, width)
            m = torch.where(neighbours, act(receiver + sender + edge), fill)
            pooled = _neighbour_sum(m) if aggregate == "sum" else m.amax(dim=3)
            update = torch.baddbmm(b_u, h, u)
            h = act(update + torch.bmm(pooled.reshape(nets, graphs * n, width), v))
        return torch.baddbmm(b_out, h, w_out)  # (networks, graphs * n, 1)

    return forward
