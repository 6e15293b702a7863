# SPDX-License-Identifier: Apache-2.0
"""Algorithm name -> class. Explicit on purpose: one line per algorithm, imported on use."""
from __future__ import annotations

import importlib

from dgm_policy_ros.config import ConfigError

ALGORITHMS: dict[str, str] = {
    'bc': 'dgm_policy_ros.policies.bc:BC',
    'td3bc': 'dgm_policy_ros.policies.td3bc:TD3BC',
    'bcq': 'dgm_policy_ros.policies.bcq:BCQ',
    'cvae_bc': 'dgm_policy_ros.policies.cvae_bc:CVAEBC',
    'gan_bc': 'dgm_policy_ros.policies.gan_bc:GANBC',
    'flow_bc': 'dgm_policy_ros.policies.flow_bc:FlowBC',
    'dt': 'dgm_policy_ros.policies.decision_transformer:DecisionTransformer',
    'diffusion_bc': 'dgm_policy_ros.policies.diffusion_bc:DiffusionBC',
    'diffusion_ql': 'dgm_policy_ros.policies.diffusion_ql:DiffusionQL',
    'idql': 'dgm_policy_ros.policies.idql:IDQL',
}

# World models train on the same trainer (checkpoints, resume, logs) as the policies.
WORLD_MODELS: dict[str, str] = {
    'wm_ensemble': 'dgm_policy_ros.world_models.ensemble:GaussianEnsemble',
    'wm_cvae': 'dgm_policy_ros.world_models.cvae:CVAEWorldModel',
    'wm_diffusion': 'dgm_policy_ros.world_models.diffusion:DiffusionWorldModel',
}


def get_algorithm(name: str):
    try:
        module_name, class_name = {**ALGORITHMS, **WORLD_MODELS}[name].split(':')
    except KeyError:
        raise ConfigError(f'unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}, world '
                          f'models: {sorted(WORLD_MODELS)}') from None
    return getattr(importlib.import_module(module_name), class_name)
