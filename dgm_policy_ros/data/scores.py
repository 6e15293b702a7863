# SPDX-License-Identifier: Apache-2.0
"""The one normalized-score metric every benchmark reports (D4RL convention).

score = 100 * (R - R_random) / (R_expert - R_random)

References live in one table. For the Gymnasium v5 tasks they are this project's own
reference agents (``shared/reference_agents/README.md``: uniform-random return and the SAC
expert checkpoint's return); for D4RL's v2 dataset names they are D4RL's published references,
so our tables can be compared with published ones.
"""
from __future__ import annotations

import re

import numpy as np

from dgm_policy_ros.config import ConfigError

# env id -> (random return, expert return)
REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    # Measured on the reference agents (mean of 100 random episodes; SAC expert checkpoint).
    'Hopper-v5': (15.3, 3252.0),
    'HalfCheetah-v5': (-266.2, 7018.0),
    # D4RL's references (d4rl/infos.py), for the v2 dataset names.
    'hopper-v2': (-20.272305, 3234.3),
    'halfcheetah-v2': (-280.178953, 12135.0),
    'walker2d-v2': (1.629008, 4592.3),
}


def reference_returns(env_id: str) -> tuple[float, float]:
    """(random, expert) returns for a Gymnasium id or a D4RL dataset name."""
    if env_id in REFERENCE_RETURNS:
        return REFERENCE_RETURNS[env_id]
    d4rl = re.match(r'^(hopper|halfcheetah|walker2d)-[a-z\-]+-v2$', env_id)
    if d4rl:
        return REFERENCE_RETURNS[f'{d4rl.group(1)}-v2']
    raise ConfigError(f'no reference returns for {env_id!r}; known: '
                      f'{sorted(REFERENCE_RETURNS)} (add a row to dgm_policy_ros/data/scores.py)')


def normalized_score(env_id: str, returns) -> np.ndarray | float:
    """D4RL-style normalized score (0 = random, 100 = expert) of one or many returns."""
    low, high = reference_returns(env_id)
    scores = 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
    return float(scores) if np.ndim(scores) == 0 else scores


def has_reference(env_id: str | None) -> bool:
    if not env_id:
        return False
    try:
        reference_returns(env_id)
    except ConfigError:
        return False
    return True
