# SPDX-License-Identifier: Apache-2.0
"""Scoring a trained run as it ships: exported to a bundle and run by the deployment runner.

Training's evaluation (the trainer receives :func:`score_snapshot` as its ``evaluate``) and
the benchmarks both score this way, so what is scored is what ships.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dgm_policy_ros.sim.evaluate import EVAL_BACKEND, evaluate_runner


def export_and_score(run_dir: str | Path, out: str | Path, episodes: int, seed: int,
                     overrides: dict[str, Any] | None = None):
    """Export a run (fp32, with deploy-time ``overrides``) to the bundle ``out`` and score it
    through the deployment runner on its training run's evaluation episodes, the runner's
    noise seeded with ``seed``. Returns the runner (for timing it further) and the result."""
    from dgm_policy_ros.export.onnx_export import export_bundle
    from dgm_policy_ros.runtime.runner import PolicyRunner

    bundle = export_bundle(run_dir, out, overwrite=True, fp16=False, overrides=overrides)
    runner = PolicyRunner(bundle, backend=EVAL_BACKEND, seed=seed)
    return runner, evaluate_runner(runner, episodes=episodes)


def score_snapshot(run_dir: Path, episodes: int, seed: int) -> dict[str, float]:
    """The trainer's evaluation: a run folder holding one step's weights -> its scores."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix='dgm-score-') as tmp:
        result = export_and_score(run_dir, Path(tmp) / 'bundle', episodes, seed)[1]
    return {**result.summary(), 'eval_backend': EVAL_BACKEND}
