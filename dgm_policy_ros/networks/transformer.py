# SPDX-License-Identifier: Apache-2.0
"""A small GPT-style causal transformer, written for fixed-shape export.

Why not ``nn.TransformerEncoder`` / ``nn.MultiheadAttention``: their masks fill with -inf, so a
query whose keys are all masked (the left padding of a short history) softmaxes to NaN, and in
eval mode they switch to a fused fast path whose export differs from what was trained. Here the
mask is an additive bias of -1e4 (finite in fp16; exp() of it underflows to exactly 0 in
fp32), attention is plain MatMul/Softmax, and LayerNorm exports as opset-17
LayerNormalization, which TensorRT runs in fp32 inside fp16 engines.
"""
from __future__ import annotations

import torch
from torch import nn

MASKED = -1.0e4


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f'embedding size {dim} is not divisible by {heads} heads')
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop, self.resid_drop = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(-2, -1) * (self.head_dim ** -0.5) + bias
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)
        return self.resid_drop(self.proj(out))


ACTIVATIONS = {'relu': nn.ReLU, 'gelu': nn.GELU}


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, dim: int, heads: int, dropout: float, activation: str = 'relu') -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), ACTIVATIONS[activation](),
                                 nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), bias)
        return x + self.mlp(self.ln2(x))


class CausalTransformer(nn.Module):
    """``forward(tokens (B, N, D), valid (B, N)) -> (B, N, D)``: each token attends to the
    valid tokens at or before its position.

    As in the Decision Transformer paper: no positional embedding of its own (the caller adds
    what position means, DT's timestep embedding, as the paper removes GPT-2's token
    positions), ReLU in the MLPs, and GPT-2's N(0, 0.02) initialization: together they made
    the difference against PyTorch's defaults (docs/algorithms/dt.md).
    """

    def __init__(self, dim: int, layers: int, heads: int, max_tokens: int,
                 dropout: float, activation: str = 'relu') -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f'activation must be one of {sorted(ACTIVATIONS)}, '
                             f'got {activation!r}')
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout, activation)
                                    for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        causal = torch.tril(torch.ones(max_tokens, max_tokens))
        self.register_buffer('causal', causal, persistent=False)
        self.apply(gpt2_init)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        allowed = self.causal[:n, :n].unsqueeze(0) * valid.unsqueeze(1)  # (B, N, N)
        bias = ((1.0 - allowed) * MASKED).unsqueeze(1)  # broadcast over heads
        x = self.drop(tokens)
        for block in self.blocks:
            x = block(x, bias)
        return self.ln_f(x)


def gpt2_init(module: nn.Module) -> None:
    """GPT-2's initialization: linear and embedding weights N(0, 0.02), zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, 'bias', None) is not None:
            nn.init.zeros_(module.bias)
