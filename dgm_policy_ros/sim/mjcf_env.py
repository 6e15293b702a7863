# SPDX-License-Identifier: Apache-2.0
"""Any MJCF model as a simulated robot: the Gymnasium step/reset interface over a bare MuJoCo
model, for ``mujoco_sim_node``'s ``mjcf_file`` (a robot's own description, no task)."""
from __future__ import annotations

import numpy as np

from dgm_policy_ros.config import ConfigError


class MjcfEnv:
    """A bare MJCF model behind the Gymnasium step/reset interface (reward 0).

    Episodes start from a keyframe (``keyframe``: its name; empty: the model's first keyframe
    if it has one, else ``qpos0``), optionally perturbed by ``reset_noise`` (uniform, seeded
    by the episode's seed, as Gymnasium's MuJoCo tasks do), and end (truncated) after
    ``max_episode_steps`` control steps of ``frame_skip`` physics steps each. Commands are
    clipped to each actuator's ``ctrlrange`` where it has one; actuators without one are not
    clipped (MuJoCo reports their range as (0, 0)), and ``unlimited`` names them.
    """

    def __init__(self, path: str, frame_skip: int = 1, keyframe: str = '',
                 max_episode_steps: int = 1000, reset_noise: float = 0.0) -> None:
        import gymnasium as gym
        import mujoco

        if frame_skip < 1 or max_episode_steps < 1 or reset_noise < 0:
            raise ConfigError('frame_skip and max_episode_steps must be >= 1 and reset_noise '
                              '>= 0')
        self.mujoco = mujoco
        self.model = mujoco.MjModel.from_xml_path(path)
        self.data = mujoco.MjData(self.model)
        self.frame_skip, self.max_episode_steps = int(frame_skip), int(max_episode_steps)
        self.reset_noise = float(reset_noise)
        self.dt = self.model.opt.timestep * frame_skip
        self.key = self._keyframe(keyframe)
        limited = self.model.actuator_ctrllimited.astype(bool)
        low = np.where(limited, self.model.actuator_ctrlrange[:, 0], -np.inf)
        high = np.where(limited, self.model.actuator_ctrlrange[:, 1], np.inf)
        self.unlimited = [self.model.actuator(i).name or f'actuator {i}'
                          for i in np.flatnonzero(~limited)]
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32))
        self.unwrapped = self
        self._steps = 0

    def _keyframe(self, name: str) -> int | None:
        if name:
            key = self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_KEY, name)
            if key < 0:
                names = [self.model.key(i).name for i in range(self.model.nkey)]
                raise ConfigError(f'keyframe {name!r} is not in the model (it has {names})')
            return int(key)
        return 0 if self.model.nkey else None

    def _obs(self):
        return np.concatenate([self.data.qpos, self.data.qvel])

    def reset(self, seed=None):
        mj = self.mujoco
        if self.key is None:
            mj.mj_resetData(self.model, self.data)
        else:
            mj.mj_resetDataKeyframe(self.model, self.data, self.key)
        if self.reset_noise:
            rng = np.random.default_rng(seed)
            self.data.qpos[:] += rng.uniform(-self.reset_noise, self.reset_noise, self.model.nq)
            self.data.qvel[:] += rng.uniform(-self.reset_noise, self.reset_noise, self.model.nv)
        mj.mj_forward(self.model, self.data)
        self._steps = 0
        return self._obs(), {}

    def step(self, action):
        self.data.ctrl[:] = action
        self.mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._steps += 1
        return self._obs(), 0.0, False, self._steps >= self.max_episode_steps, {}
