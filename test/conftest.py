# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: isolated Minari root, a private ROS 2 domain, hand-built episodes."""
import os

import numpy as np
import pytest

from dgm_policy_ros.data.episodes import Episode

# A private DDS domain for this test run, discovery limited to this machine: ROS tests never
# see (or disturb) other ROS 2 processes.
os.environ.setdefault('ROS_DOMAIN_ID', str(60 + os.getpid() % 40))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
# Headless rendering: MuJoCo reads MUJOCO_GL when first imported; the sim layer chooses it.
import dgm_policy_ros.sim  # noqa: E402,F401

# Small sizes per algorithm, so tests train in seconds (the defaults are sized for MuJoCo).
SQ_DIFFUSION = {'n_candidates': 4, 'critic_hidden': [64, 64]}
TEST_SIZES = {
    'diffusion_bc': {'horizon': 4, 'n_action_steps': 2, 'diffusion_steps': 20,
                     'sampling_steps': 5},
    'dt': {'context': 5, 'embed_dim': 32, 'layers': 1, 'heads': 2, 'dropout': 0.0,
           'warmup_steps': 10, 'lr': 1e-3},
    'bcq': {'vae_hidden': [64, 64], 'n_samples': 4},
    'idql': SQ_DIFFUSION, 'diffusion_ql': SQ_DIFFUSION,
    'wm_diffusion': {'diffusion_steps': 20, 'sampling_steps': 5, 'samples': 4},
    'wm_ensemble': {'members': 3},
    'wm_cvae': {'samples': 4},
}


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    """Every test writes datasets into its own folder."""
    root = tmp_path / 'minari'
    monkeypatch.setenv('MINARI_DATASETS_PATH', str(root))
    return root


def make_episode(episode_id=0, steps=5, obs_dim=3, act_dim=2, terminal=False, seed=0,
                 rewards=None):
    """An episode whose values encode (episode, step) so gathers can be checked by eye."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1, dtype=np.float32)
    obs = np.stack([t + 100 * episode_id + d / 10 for d in range(obs_dim)], axis=1)
    actions = np.clip(rng.normal(size=(steps, act_dim)), -1, 1).astype(np.float32)
    actions[:, 0] = np.arange(steps) / 100 + episode_id / 10  # decodable (episode, step)
    r = np.asarray(rewards if rewards is not None else np.arange(1, steps + 1), np.float32)
    terms = np.zeros(steps, bool)
    truncs = np.zeros(steps, bool)
    (terms if terminal else truncs)[-1] = True
    return Episode(episode_id, obs, actions, r, terms, truncs)


@pytest.fixture
def episodes():
    return [make_episode(0, steps=5, terminal=True), make_episode(1, steps=3, terminal=False),
            make_episode(2, steps=7, terminal=False, seed=2)]


def collect_or_skip(**config):
    """``dgm collect`` in process (a CollectConfig's fields); the test skips, with the reason,
    where MetaWorld is not installed or no GL context can be made to render."""
    pytest.importorskip('metaworld', reason='metaworld not installed (make venv installs it)')
    from dgm_policy_ros.config import ConfigError
    from dgm_policy_ros.sim.collect import CollectConfig, collect

    try:
        return collect(CollectConfig(**config), progress=False)
    except ConfigError as exc:
        if 'cannot render headless' in str(exc):
            pytest.skip(str(exc))
        raise
