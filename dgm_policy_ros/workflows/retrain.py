# SPDX-License-Identifier: Apache-2.0
"""``dgm retrain``: fine-tune the model inside a bundle on new data (e.g. converted bags) and
export the result as a new bundle whose manifest names its parent.

The bundle carries its trained weights, config and data spec (``training/``), so retraining
needs no run folder. Fine-tuning keeps the parent's observation normalization and action
bounds (the network was trained on those inputs); with ``mix_original`` the new episodes are
trained on together with the parent's own dataset, against forgetting. Parent and child are
scored through the deployment runner on the same MuJoCo seeds.
"""
from __future__ import annotations

from pathlib import Path
import re
from typing import Any

import yaml

from dgm_policy_ros.runtime.bundle import BundleError, load_bundle


def retrain(bundle: str | Path, dataset: str, out: str | Path, bundle_out: str | Path,
            steps: int = 5000, mix_original: bool = False, seed: int = 0,
            eval_episodes: int = 10, overwrite: bool = False, progress: bool = True
            ) -> dict[str, Any]:
    from dgm_policy_ros.data.minari_io import concatenate
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    parent = load_bundle(bundle)
    trained = parent.path / 'training'
    if not (trained / 'model.safetensors').is_file():
        raise BundleError(f'{parent.path} carries no trained model (training/): re-export it '
                          'from its run folder with this version of dgm export')
    parent_cfg = TrainConfig.from_dict(yaml.safe_load((trained / 'config.yaml').read_text()))
    data = dataset
    if mix_original:
        data = re.sub(r'(-v\d+)?$', lambda m: f'-with-parent{m.group(0) or "-v0"}', dataset,
                      count=1)
        concatenate(data, [dataset, parent_cfg.dataset], overwrite=True,
                    description=f'{dataset} plus {parent_cfg.dataset} (dgm retrain)')
    cfg = TrainConfig(algo=parent_cfg.algo, dataset=data, out=str(out), steps=steps, seed=seed,
                      eval_every=-1, eval_episodes=eval_episodes, eval_env=parent.env_id,
                      checkpoint_every=max(steps // 5, 1), progress=progress,
                      algo_config=parent_cfg.algorithm_config(saved=True).to_dict(),
                      init_from=str(trained))
    trained_result = Trainer(cfg).run()
    child = load_bundle(export_bundle(out, bundle_out, overwrite=overwrite,
                                      parent=f'{parent.path} (sha256 {parent.sha256})'))
    summary: dict[str, Any] = {'parent': str(parent.path), 'bundle': str(child.path),
                               'dataset': data, 'steps': steps,
                               'steps_per_s': trained_result['steps_per_s']}
    if parent.env_id and eval_episodes:
        from dgm_policy_ros.runtime import PolicyRunner
        from dgm_policy_ros.sim.evaluate import EVAL_BACKEND, evaluate_runner

        for name, b in (('parent', parent), ('retrained', child)):  # on the parent's episodes
            result = evaluate_runner(PolicyRunner(b, backend=EVAL_BACKEND, seed=seed),
                                     parent.env_id, eval_episodes, seed=parent.eval_env_seed)
            summary[name] = result.summary()
    return summary
