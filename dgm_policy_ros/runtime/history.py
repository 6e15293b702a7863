# SPDX-License-Identifier: Apache-2.0
"""The history a sequence policy sees, kept outside the model (torch-free).

A Decision Transformer needs the last K observations, actions and returns-to-go; a diffusion
policy with ``n_obs_steps > 1`` needs the last few observations (and, if it sees images, each
camera's last few frames: ``images/<camera>`` windows (K, H, W, C), uint8). The exported graph
takes that window as explicit fixed-size inputs, so the window itself must live in the runtime:
the ROS node, the runner and the evaluation loop all keep one :class:`HistoryBuffer` per robot
(or per simulated environment), built from the :class:`HistorySpec` in the bundle's manifest.

Layout (the training samplers produce the same): oldest step first, the current step in the
last slot. Before the episode has K steps, the window is left-padded, either with zeros and
``mask`` = 0 (``padding: zeros``) or with the first observation repeated
(``padding: repeat_first``). The current step's action is not known yet: its slot holds zeros
(causal attention never lets the current observation see it).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# Graph input names for each history field; 'obs' is the observation window itself.
FIELDS = ('past_actions', 'returns_to_go', 'timesteps', 'mask')


@dataclasses.dataclass(frozen=True)
class HistorySpec:
    """What window a policy consumes; serialized into the bundle manifest."""

    length: int  # K: steps of history, the current one included
    fields: tuple[str, ...] = ()  # graph inputs besides the observation window, from FIELDS
    padding: str = 'zeros'  # zeros (with mask) | repeat_first
    target_return: float | None = None  # returns-to-go start here (return-conditioned models)
    max_timestep: int = 1000  # timesteps saturate here (the embedding table's size)

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f'history length must be >= 1, got {self.length}')
        unknown = set(self.fields) - set(FIELDS)
        if unknown:
            raise ValueError(f'unknown history fields {sorted(unknown)}; known: {FIELDS}')
        if self.padding not in ('zeros', 'repeat_first'):
            raise ValueError(f"history padding must be 'zeros' or 'repeat_first', got "
                             f'{self.padding!r}')
        if 'returns_to_go' in self.fields and self.target_return is None:
            raise ValueError('a return-conditioned history needs a target_return')

    def to_dict(self) -> dict[str, Any]:
        return {'length': self.length, 'fields': list(self.fields), 'padding': self.padding,
                'target_return': self.target_return, 'max_timestep': self.max_timestep}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistorySpec:
        return cls(int(data['length']), tuple(data.get('fields', ())),
                   data.get('padding', 'zeros'), data.get('target_return'),
                   int(data.get('max_timestep', 1000)))

    def input_shapes(self, obs_size: int, act_size: int) -> dict[str, tuple[int, ...]]:
        """Graph input name -> shape without the batch dimension, in graph order."""
        shapes = {'obs': (self.length, obs_size), 'past_actions': (self.length, act_size),
                  'returns_to_go': (self.length, 1), 'timesteps': (self.length,),
                  'mask': (self.length,)}
        return {name: shapes[name] for name in ('obs', *self.fields)}


class HistoryBuffer:
    """One robot's window. Per control step: ``push(obs)``, then (after the action is chosen)
    ``record_action(action)``, then (when the reward arrives) ``record_reward(reward)``."""

    def __init__(self, spec: HistorySpec, obs_size: int, act_size: int,
                 target_return: float | None = None,
                 frame_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        self.spec, self.obs_size, self.act_size = spec, obs_size, act_size
        # Camera input name -> the window of its frames, padded as the observations are.
        self._frames = {name: np.zeros((spec.length, *shape), np.uint8)
                        for name, shape in (frame_shapes or {}).items()}
        self.target_return = spec.target_return if target_return is None else target_return
        k = spec.length
        self._obs = np.zeros((k, obs_size), np.float32)
        self._act = np.zeros((k, act_size), np.float32)
        self._rtg = np.zeros((k, 1), np.float32)
        self._t = np.zeros(k, np.float32)
        self._mask = np.zeros(k, np.float32)
        self.reset()

    def reset(self, target_return: float | None = None) -> None:
        """A new episode: empty window, returns-to-go back at the target."""
        if target_return is not None:
            self.target_return = target_return
        for array in (self._obs, self._act, self._rtg, self._t, self._mask,
                      *self._frames.values()):
            array[:] = 0
        self.steps = 0
        self.return_to_go = float(self.target_return or 0.0)

    def push(self, obs: np.ndarray, frames: dict[str, np.ndarray] | None = None) -> None:
        """The current step's observation, and each camera's frame when the window holds
        frames (shifts the window by one step)."""
        if set(frames or ()) != set(self._frames):
            raise ValueError(f'the window holds frames of {sorted(self._frames)}, got '
                             f'{sorted(frames or ())}')
        for array in (self._obs, self._act, self._rtg, self._t, self._mask,
                      *self._frames.values()):
            array[:-1] = array[1:]
        self._obs[-1] = obs
        for name, window in self._frames.items():
            window[-1] = frames[name]
        self._act[-1] = 0.0
        self._rtg[-1] = self.return_to_go
        self._t[-1] = min(self.steps, self.spec.max_timestep - 1)
        self._mask[-1] = 1.0
        if self.steps == 0 and self.spec.padding == 'repeat_first':
            self._obs[:-1] = obs
            for name, window in self._frames.items():
                window[:-1] = frames[name]
        self.steps += 1

    def record_action(self, action: np.ndarray) -> None:
        self._act[-1] = action

    def record_reward(self, reward: float) -> None:
        self.return_to_go -= float(reward)

    def feeds(self) -> dict[str, np.ndarray]:
        """The window as graph inputs (no batch dimension)."""
        if self.steps == 0:
            raise RuntimeError('the history is empty: push an observation first')
        arrays = {'obs': self._obs, 'past_actions': self._act, 'returns_to_go': self._rtg,
                  'timesteps': self._t, 'mask': self._mask, **self._frames}
        return {name: arrays[name].copy() for name in ('obs', *self._frames, *self.spec.fields)}


def stack_feeds(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-robot windows -> one batch."""
    return {name: np.stack([f[name] for f in feeds]) for name in feeds[0]}
