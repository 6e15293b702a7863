# SPDX-License-Identifier: Apache-2.0
"""``dt``: Decision Transformer (Chen et al. 2021).

Offline RL as sequence modelling: the last K steps, each three tokens (return-to-go, state,
action), go through a causal transformer; the action is read from the current state's token.
At deployment the target return is a parameter: returns-to-go start there and fall by each
reward received.

The history window is an explicit, fixed-size graph input (see
``dgm_policy_ros.runtime.history``): ``obs`` (B, K, obs_dim), ``past_actions`` (B, K, A),
``returns_to_go`` (B, K, 1), ``timesteps`` (B, K) and ``mask`` (B, K, 1 where a step is real).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.networks.transformer import ACTIVATIONS, CausalTransformer, gpt2_init
from dgm_policy_ros.runtime.history import HistorySpec
from dgm_policy_ros.training.algorithm import AlgoConfig, Algorithm, DataSpec

STATE_ENCODERS = ('linear', 'relu')


@dataclasses.dataclass
class DTConfig(AlgoConfig):
    batch_size: int = 64
    lr: float = 1e-4
    context: int = 20  # K
    embed_dim: int = 128
    layers: int = 3
    heads: int = 1
    dropout: float = 0.1
    activation: str = 'relu'  # of the transformer's MLPs: 'relu' (the paper's) or 'gelu'
    # The state token: 'linear' (the paper's) or 'relu', a ReLU after it (d3rlpy's encoder).
    state_encoder: str = 'linear'
    weight_decay: float = 1e-4
    warmup_steps: int = 1000  # linear learning-rate warm-up
    grad_clip: float = 0.25
    max_timestep: int = 1000
    target_return: Optional[float] = None  # default: the best return in the training data
    rtg_scale: Optional[float] = None  # returns-to-go are divided by this; default: the same

    def validate(self) -> None:
        super().validate()
        if self.context < 1 or self.layers < 1 or self.heads < 1 or self.max_timestep < 1:
            raise ConfigError('DTConfig: context, layers, heads and max_timestep must be >= 1')
        if self.embed_dim % self.heads:
            raise ConfigError(f'DTConfig.embed_dim ({self.embed_dim}) must be divisible by '
                              f'heads ({self.heads})')
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f'DTConfig.activation must be one of {sorted(ACTIVATIONS)}')
        if self.state_encoder not in STATE_ENCODERS:
            raise ConfigError(f'DTConfig.state_encoder must be one of {STATE_ENCODERS}')
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError('DTConfig.dropout must be in [0, 1)')
        if self.rtg_scale is not None and not self.rtg_scale > 0:
            raise ConfigError('DTConfig.rtg_scale must be > 0')


class DecisionTransformer(Algorithm):
    name = 'dt'
    family = 'transformer'
    config_class = DTConfig
    sampler_kind = 'sequences'

    def __init__(self, cfg: DTConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        d = cfg.embed_dim
        self.target_return = cfg.target_return if cfg.target_return is not None \
            else spec.return_max
        self.rtg_scale = cfg.rtg_scale or max(abs(spec.return_max), 1.0)
        self.embed_state = nn.Linear(spec.obs_dim, d) if cfg.state_encoder == 'linear' else \
            nn.Sequential(nn.Linear(spec.obs_dim, d), nn.ReLU())
        self.embed_action = nn.Linear(spec.act_dim, d)
        self.embed_return = nn.Linear(1, d)
        self.embed_time = nn.Embedding(cfg.max_timestep, d)
        self.embed_ln = nn.LayerNorm(d)
        self.embed_time.apply(gpt2_init)
        self.transformer = CausalTransformer(d, cfg.layers, cfg.heads, 3 * cfg.context,
                                             cfg.dropout, cfg.activation)
        self.head = nn.Sequential(nn.Linear(d, spec.act_dim), nn.Tanh())
        self.opt = torch.optim.AdamW(self.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        # The warm-up reads a step counter kept in the state dict, so a resumed run continues
        # the same learning-rate schedule (an LRScheduler's state would not be checkpointed).
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def history_spec(self) -> HistorySpec:
        return HistorySpec(self.cfg.context, ('past_actions', 'returns_to_go', 'timesteps',
                                              'mask'), 'zeros', float(self.target_return),
                           self.cfg.max_timestep)

    def forward_sequence(self, obs, past_actions, returns_to_go, timesteps, mask):
        """Unit actions predicted at every step of the window, (B, K, A)."""
        b, k, _ = obs.shape
        # Clamp as a float, then cast: keeps the graph free of int64 clamping (TensorRT).
        t = timesteps.clamp(0, self.cfg.max_timestep - 1).long()
        time = self.embed_time(t)
        s = self.embed_state(self.obs_norm(obs)) + time
        a = self.embed_action(self.unit_actions(past_actions)) + time
        r = self.embed_return(returns_to_go / self.rtg_scale) + time
        tokens = torch.stack([r, s, a], dim=2).reshape(b, 3 * k, -1)  # R_1 s_1 a_1 R_2 ...
        valid = mask.unsqueeze(-1).expand(b, k, 3).reshape(b, 3 * k)
        h = self.transformer(self.embed_ln(tokens), valid)
        return self.head(h.view(b, k, 3, -1)[:, :, 1])  # read actions off the state tokens

    def act(self, obs, past_actions, returns_to_go, timesteps, mask) -> torch.Tensor:
        unit = self.forward_sequence(obs, past_actions, returns_to_go, timesteps, mask)
        return self.act_scale.from_unit(unit[:, -1:])

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        mask = batch['mask']
        timesteps = batch['timesteps'].float()
        pred = self.forward_sequence(batch['observations'], batch['actions'],
                                     batch['returns_to_go'], timesteps, mask)
        target = self.unit_actions(batch['actions'])
        err = F.mse_loss(pred, target, reduction='none').mean(-1)
        loss = (err * mask).sum() / mask.sum().clamp(min=1)
        self.steps += 1
        for group in self.opt.param_groups:
            group['lr'] = self.cfg.lr * min(1.0, int(self.steps) / max(self.cfg.warmup_steps, 1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
        self.opt.step()
        return {'loss': loss.item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'model': self.opt}
