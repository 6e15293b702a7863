# SPDX-License-Identifier: Apache-2.0
"""Every MetaWorld v3 task as a Gymnasium id, ``metaworld/<task>`` (e.g. ``metaworld/reach-v3``),
and its scripted expert as a behaviour policy.

Each id is the task's goal-observable single-task environment (39-dim state, 4-dim action in
[-1, 1], 500-step episodes, ``info['success']``). ``reset(seed=s)`` seeds the task's goal and
object placement (MetaWorld itself ignores the reset seed), so episode i of an evaluation with
seed s is the same everywhere, as for the MuJoCo locomotion tasks. An episode ends (truncated)
at the first step that reports success, so demonstrations stop when the task is done and an
evaluation, a collection and the simulator node all score an episode the same way.

MetaWorld 3.1.1 pins ``mujoco==3.3.0``; it is installed without that pin (Makefile) and runs on
this project's MuJoCo with the one fix in :func:`_fit_mocap_welds` (MuJoCo 4's weld rows are
wider than the 11 values MetaWorld writes). ``test_metaworld.py`` fails when MetaWorld's own
behaviour changes, so the fix goes when it is no longer needed.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

NAMESPACE = 'metaworld'
MAX_EPISODE_STEPS = 500
ORIGINAL: dict[str, Any] = {}  # MetaWorld's own methods this module replaced
# The values MetaWorld writes into each mocap weld's eq_data row (relpose and torquescale).
_WELD_ROW = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]


def _fit_mocap_welds(self) -> None:
    """MetaWorld's ``reset_mocap_welds``, writing its 11 values into the leading columns of a
    weld row of whatever width this MuJoCo has (zeros after them)."""
    import mujoco

    if self.model.nmocap > 0 and self.model.eq_data is not None:
        width = self.model.eq_data.shape[1]
        row = np.zeros(width)
        row[:min(width, len(_WELD_ROW))] = _WELD_ROW[:width]
        for i in range(self.model.eq_data.shape[0]):
            if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                self.model.eq_data[i] = row


def needs_weld_fix() -> bool:
    """Whether MetaWorld's own weld reset fails on this MuJoCo (the fix is then applied)."""
    import mujoco

    probe = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body name="m" mocap="true"/><body name="b"><freejoint/>'
        '<geom size=".1"/></body></worldbody><equality><weld body1="m" body2="b"/>'
        '</equality></mujoco>')
    return probe.eq_data.shape[1] != len(_WELD_ROW)


def _ensure_weld_fix() -> None:
    from metaworld.sawyer_xyz_env import SawyerMocapBase

    if SawyerMocapBase.reset_mocap_welds is not _fit_mocap_welds and needs_weld_fix():
        ORIGINAL['reset_mocap_welds'] = SawyerMocapBase.reset_mocap_welds
        SawyerMocapBase.reset_mocap_welds = _fit_mocap_welds


@functools.lru_cache(maxsize=1)
def task_names() -> tuple[str, ...]:
    """Every MetaWorld v3 task (50), registering ``metaworld/<task>`` for each on first use."""
    import gymnasium as gym
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    _ensure_weld_fix()
    names = tuple(sorted(ALL_V3_ENVIRONMENTS))
    for name in names:
        gym.register(id=f'{NAMESPACE}/{name}', entry_point=f'{__name__}:make_task',
                     kwargs={'task': name}, max_episode_steps=MAX_EPISODE_STEPS)
    return names


def make_task(task: str, render_mode: str | None = None, **kwargs: Any):
    """The goal-observable environment of ``task``, seeded through ``reset(seed=...)``."""
    import gymnasium as gym
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    _ensure_weld_fix()  # also when Gymnasium or Minari make the task from its spec
    env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f'{task}-goal-observable'](
        render_mode=render_mode, **kwargs)
    # MetaWorld's goal-observable tasks freeze the placement drawn (from numpy's global
    # generator) when they were made; here every reset draws it from the task's own generator,
    # which a reset's seed seeds.
    env.unwrapped._freeze_rand_vec = False
    env.unwrapped.seeded_rand_vec = True

    class SeededTask(gym.Wrapper):
        def reset(self, *, seed: int | None = None, options=None):
            if seed is not None:
                self.env.unwrapped.seed(seed)
            return self.env.reset(options=options)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated or bool(info.get('success')), info

    return SeededTask(env)


class ScriptedExpert:
    """MetaWorld's scripted policy for a task, as a (batched) behaviour policy."""

    def __init__(self, task: str) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        if task not in ENV_POLICY_MAP:
            raise KeyError(task)
        self.task, self.policy = task, ENV_POLICY_MAP[task]()

    def act(self, observations: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(observations)
        return np.stack([self.policy.get_action(o) for o in obs]).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {'type': 'metaworld scripted expert', 'task': self.task}
