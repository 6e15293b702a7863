# SPDX-License-Identifier: Apache-2.0
"""A failing evaluation or export never costs trained weights; the CLI hides no bugs."""
import json

import numpy as np
import pytest
from test_policies import tiny_dataset  # noqa: F401
import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.export.onnx_export import ExportError, check_log_prob_parity, export_onnx


def test_a_failing_final_evaluation_keeps_the_weights_and_says_why(tiny_dataset, tmp_path,  # noqa: F811
                                                                   monkeypatch):
    import dgm_policy_ros.workflows.evaluation as evaluation

    def broken_export(*args, **kwargs):
        raise ExportError('log_prob graph differs from torch by 0.0017')

    monkeypatch.setattr(evaluation, 'export_and_score', broken_export)
    run = tmp_path / 'run'
    from dgm_policy_ros.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig(algo='bc', dataset=str(tiny_dataset), out=str(run), steps=20,
                      checkpoint_every=10, log_every=10, eval_every=0, eval_env='Hopper-v5',
                      tensorboard=False, progress=False,
                      algo_config={'batch_size': 64, 'hidden': [64, 64]})
    result = Trainer(cfg, evaluate=evaluation.score_snapshot).run()
    assert (run / 'model.safetensors').is_file()
    saved = json.loads((run / 'result.json').read_text())
    assert saved['eval_errors'] == result['eval_errors']
    assert 'step 20: ExportError: log_prob graph differs' in saved['eval_errors'][0]
    assert saved['steps'] == 20 and 'score_mean' not in saved


class _LogDensity(torch.nn.Module):
    """Log densities of a large scale (thousands), as a narrow flow gives."""

    def __init__(self, scale=1.0, shift=0.0):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, obs, action):
        return (-1000.0 * (obs ** 2).sum(-1) - action.sum(-1)) * self.scale + self.shift


def test_log_prob_parity_scales_with_the_log_density(tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.normal(0, 1, (64, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    path = tmp_path / 'log_prob.onnx'
    export_onnx(_LogDensity(), [obs[:2], act[:2]], ['obs', 'action'], 'log_prob', path)
    assert check_log_prob_parity(path, _LogDensity(), obs, act) < 1.0
    # Rounding-sized relative differences at |log p| ~ 3000 pass (an absolute 1e-3 did not)...
    check_log_prob_parity(path, _LogDensity(scale=1 + 2e-4), obs, act)
    # ...an offset that is not rounding does not.
    with pytest.raises(ExportError, match='log_prob graph differs'):
        check_log_prob_parity(path, _LogDensity(shift=0.5), obs, act)


def test_the_cli_reports_user_errors_in_one_line_and_keeps_tracebacks_of_bugs(monkeypatch,
                                                                              capsys):
    from dgm_policy_ros.cli import main as cli

    def user_error(args):
        raise ConfigError('steps must be >= 1')

    def bug(args):
        return {}['missing']

    parser = cli.build_parser
    monkeypatch.setattr(cli, 'build_parser', lambda: _with_handler(parser(), user_error))
    assert cli.main(['eval', '--bundle', 'x']) == 2
    assert 'dgm eval: error: steps must be >= 1' in capsys.readouterr().err
    monkeypatch.setattr(cli, 'build_parser', lambda: _with_handler(parser(), bug))
    with pytest.raises(KeyError):
        cli.main(['eval', '--bundle', 'x'])


def _with_handler(parser, handler):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(handler=handler)
    return parser
