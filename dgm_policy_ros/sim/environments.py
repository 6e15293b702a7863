# SPDX-License-Identifier: Apache-2.0
"""``make_env``: every environment id the project knows, made one way: Gymnasium's own
(``Hopper-v5``) and ``metaworld/<task>`` (registered on first use)."""
from __future__ import annotations

from typing import Any

from dgm_policy_ros.config import ConfigError


def is_metaworld(env_id: str) -> bool:
    return env_id.startswith('metaworld/')


def make_env(env_id: str, views: list | None = None, **kwargs: Any):
    """The environment ``env_id``; with camera ``views`` (``sim.cameras.CameraView``), its
    observations are the state and the rendered images (``sim.cameras.with_cameras``)."""
    import gymnasium as gym

    if is_metaworld(env_id):
        from dgm_policy_ros.sim.metaworld_tasks import task_names

        try:
            names = task_names()
        except ImportError as exc:
            raise ConfigError(f'{env_id}: MetaWorld is not installed (make venv installs '
                              'it)') from exc
        if env_id.split('/', 1)[1] not in names:
            raise ConfigError(f'{env_id} is not a MetaWorld v3 task; known: '
                              f"{', '.join(names)}")
    env = gym.make(env_id, **kwargs)
    if views:
        from dgm_policy_ros.sim.cameras import with_cameras

        env = with_cameras(env, views)
    return env
