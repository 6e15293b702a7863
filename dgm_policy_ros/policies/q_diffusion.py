# SPDX-License-Identifier: Apache-2.0
"""What the Q-guided diffusion policies (``idql``, ``diffusion_ql``) share: a diffusion model
over single actions and a twin-Q critic that picks one of ``n_candidates`` sampled actions.

``selection``: ``argmax`` takes the candidate of highest min(Q1, Q2); a subclass may add a
weighted draw (``idql``'s ``expectile``), made inside the graph from an explicit uniform input
(``selection_noise``) by inverting the weights' CDF. Either way the deployed graph, sampler,
critic and selection together, is deterministic given its explicit noise inputs.
"""
from __future__ import annotations

import dataclasses

import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule
from dgm_policy_ros.networks.denoisers import DENOISERS, make_denoiser
from dgm_policy_ros.policies.critics import TwinQ, make_target
from dgm_policy_ros.policies.denoiser_ema import DenoiserEMA
from dgm_policy_ros.policies.diffusion_settings import DiffusionSettings
from dgm_policy_ros.training.algorithm import Algorithm, DataSpec, NoiseSpec


@dataclasses.dataclass
class QDiffusionConfig(DiffusionSettings):
    # The papers' short chain of 5 noise levels (diffusion_ql samples it with gradients in
    # training), learnt at bc's rate: it fits the data as well as bc's regression does.
    diffusion_steps: int = 5
    sampling_steps: int = 5
    lr: float = 1e-3
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256, 256])
    denoiser: str = 'mlp'  # or 'resnet' (IDQL's LN-ResNet: width hidden[0], len(hidden) blocks)
    critic_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    n_candidates: int = 32
    gamma: float = 0.99
    tau: float = 0.005
    critic_lr: float = 3e-4
    selection: str = 'argmax'

    selections = ('argmax',)  # what this algorithm offers
    legacy = {'prediction': 'epsilon'}  # runs saved before 'prediction' existed

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if self.denoiser not in DENOISERS:
            raise ConfigError(f'{name}.denoiser must be one of {DENOISERS}')
        if self.selection not in self.selections:
            raise ConfigError(f'{name}.selection must be one of {self.selections}')
        if self.n_candidates < 1:
            raise ConfigError(f'{name}.n_candidates must be >= 1')
        if not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ConfigError(f'{name}: gamma and tau must be in (0, 1]')


class QGuidedDiffusion(DenoiserEMA, Algorithm):
    """Base class: subclasses add their critic training in ``update``."""

    family = 'diffusion'
    chooses_among_candidates = True

    def __init__(self, cfg: QDiffusionConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.denoiser = make_denoiser(cfg.denoiser, spec.obs_dim, spec.act_dim, cfg.hidden,
                                      cfg.time_embed)
        self.schedule = NoiseSchedule(cfg.diffusion_steps, cfg.schedule, prediction=cfg.prediction)
        self.sampler = DDIMSampler(self.schedule, cfg.sampling_steps)
        self.critic = TwinQ(spec.obs_dim, spec.act_dim, cfg.critic_hidden)
        self.critic_target = make_target(self.critic)
        self.init_denoiser_ema()
        self.actor_opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.lr,
                                           weight_decay=1e-6)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)

    def noise_specs(self) -> list[NoiseSpec]:
        specs = [NoiseSpec('candidate_noise', (self.cfg.n_candidates, self.spec.act_dim),
                           'normal', scale=self.cfg.temperature)]
        if self.cfg.selection != 'argmax':
            specs.append(NoiseSpec('selection_noise', (1,), 'uniform'))
        return specs

    def sample(self, denoiser, obs_n: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Unit actions (B, A) from normalized observations (B, O) and noise (B, A)."""
        return self.sampler(lambda x, t: denoiser(x, t, obs_n), noise).clamp(-1.0, 1.0)

    def act(self, obs: torch.Tensor, candidate_noise: torch.Tensor,
            selection_noise: torch.Tensor | None = None) -> torch.Tensor:
        b, n, a = candidate_noise.shape
        norm = self.obs_norm(obs)
        obs_n = norm.unsqueeze(1).expand(b, n, obs.shape[-1]).reshape(b * n, -1)
        candidates = self.sample(self.inference_denoiser, obs_n,
                                 candidate_noise.reshape(b * n, a))
        q = self.critic.q_min(obs_n, candidates).view(b, n)
        if self.cfg.selection == 'argmax':
            pick = q.argmax(dim=1)
        else:
            weights = self.selection_weights(norm, q)
            cdf = torch.cumsum(weights, 1) / weights.sum(1, keepdim=True)
            # The first index whose CDF exceeds u (u in [0, 1)): a categorical draw.
            pick = (cdf <= selection_noise).sum(1).clamp(max=n - 1)
        index = pick.view(b, 1, 1).expand(b, 1, a)
        chosen = torch.gather(candidates.view(b, n, a), 1, index)  # (B, 1, A)
        return self.act_scale.from_unit(chosen)

    def selection_weights(self, obs_n: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Unnormalized (B, N) weights of the candidates for a weighted ``selection``."""
        raise NotImplementedError(f'{self.name} has no weighted selection')

    def behaviour_loss(self, obs_n: torch.Tensor, act: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
        """The DDPM objective on dataset actions (behaviour cloning; ``weights`` (B,) scale
        each action's term)."""
        return self.schedule.training_loss(lambda x, t: self.denoiser(x, t, obs_n), act,
                                           weights=weights)
