# SPDX-License-Identifier: Apache-2.0
"""`dgm collect`, `collect-suite` and `train-expert` on short real MuJoCo runs."""
import json

import numpy as np
import pytest

from dgm_policy_ros.cli.main import main
from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.minari_io import load_dataset
from dgm_policy_ros.sim.agents import make_policy, reference_agents_dir
from dgm_policy_ros.sim.collect import CollectConfig, collect, collect_suite

AGENTS = reference_agents_dir()
needs_agents = pytest.mark.skipif(
    AGENTS is None or not (AGENTS / 'Hopper-v5_175000_steps.zip').is_file(),
    reason='shared/reference_agents (SB3 checkpoints) not found beside the checkout')


def test_collect_random_by_steps_via_cli(capsys):
    rc = main(['collect', '--env', 'Hopper-v5', '--agent', 'random', '--steps', '300',
               '--seed', '1', '--n-envs', '3', '--out', 'test/hopper/random-v0', '--quiet'])
    assert rc == 0
    ds = load_dataset('test/hopper/random-v0')
    assert ds.total_steps == 300
    assert ds.env_id == 'Hopper-v5' and (ds.obs_dim, ds.act_dim) == (11, 3)
    # Random Hopper falls over quickly: most episodes end in a true terminal.
    assert sum(ep.terminations[-1] for ep in ds.episodes) >= len(ds.episodes) - 3
    prov = ds.provenance
    assert prov['behaviour'][0]['type'] == 'random'
    assert prov['seed'] == 1 and prov['transitions'] == 300
    assert prov['episodes_cut_by_budget'] <= 3
    for ep in ds.episodes:
        assert np.all(ep.actions >= -1) and np.all(ep.actions <= 1)
    assert 'test/hopper/random-v0' in capsys.readouterr().out


def test_collect_is_deterministic_and_counts_episodes():
    ids = []
    for k in range(2):
        cfg = CollectConfig(env='Hopper-v5', out=f'test/hopper/r{k}-v0', episodes=4, seed=5,
                            n_envs=2)
        collect(cfg, progress=False)
        ids.append(cfg.out)
    a, b = (load_dataset(i) for i in ids)
    assert len(a.episodes) == 4
    for ea, eb in zip(a.episodes, b.episodes):
        np.testing.assert_array_equal(ea.observations, eb.observations)
        np.testing.assert_array_equal(ea.actions, eb.actions)
    # Whole episodes only: each ends in a terminal or the env's own time limit.
    assert all(ep.terminations[-1] or ep.truncations[-1] for ep in a.episodes)


def test_bad_collect_config_is_rejected(capsys):
    with pytest.raises(ConfigError, match='exactly one of steps or episodes'):
        CollectConfig(env='Hopper-v5', out='a/b-v0')
    with pytest.raises(ConfigError, match='not a Minari id'):
        CollectConfig(env='Hopper-v5', out='nonsense', steps=10)
    assert main(['collect', '--env', 'Hopper-v5', '--agent', 'nope.zip', '--steps', '5',
                 '--out', 'a/b-v0', '--agents-dir', '/nonexistent']) == 2
    assert 'behaviour agent' in capsys.readouterr().err


@needs_agents
def test_collect_from_reference_agent_with_noise():
    import gymnasium as gym

    env = gym.make('Hopper-v5')
    low, high = env.action_space.low, env.action_space.high
    clean = make_policy('Hopper-v5_375000_steps.zip', low, high, noise=0.0)
    noisy = make_policy('Hopper-v5_375000_steps.zip', low, high, noise=0.3, seed=0)
    obs = np.stack([env.reset(seed=i)[0] for i in range(64)]).astype(np.float32)
    deviation = noisy.act(obs) - clean.act(obs)
    half = (high - low) / 2
    # Unclipped components deviate by N(0, 0.3 * half): check the spread.
    assert 0.15 < np.std(deviation / half) < 0.4
    cfg = CollectConfig(env='Hopper-v5', out='test/hopper/expert-v0', episodes=1,
                        agent='Hopper-v5_375000_steps.zip', noise=0.05, n_envs=1)
    prov = collect(cfg, progress=False)
    assert prov['behaviour'][0]['checkpoint'] == 'Hopper-v5_375000_steps.zip'
    # The expert hops far beyond what random actions reach (15 return, ~20 steps).
    assert prov['return_mean'] > 1000
    assert prov['normalized_score_mean'] > 30


@needs_agents
def test_collect_suite_builds_recipes_and_concatenation(tmp_path):
    results = collect_suite('Hopper-v5', 120, only=['medium-expert'], n_envs=2,
                            progress=False)
    assert set(results) == {'dgm/hopper/medium-v0', 'dgm/hopper/expert-v0',
                            'dgm/hopper/medium-expert-v0'}
    merged = load_dataset('dgm/hopper/medium-expert-v0')
    assert merged.total_steps == 240
    assert merged.provenance['sources'] == ['dgm/hopper/medium-v0', 'dgm/hopper/expert-v0']
    info = json.loads(_run_json(['dataset-info', 'dgm/hopper/medium-expert-v0', '--json']))
    assert info['transitions'] == 240 and info['env_id'] == 'Hopper-v5'


def _run_json(argv):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


@pytest.mark.slow
def test_train_expert_writes_loadable_checkpoints(tmp_path):
    out = tmp_path / 'agents'
    rc = main(['train-expert', '--env', 'Pendulum-v1', '--steps', '400', '--checkpoint-every',
               '200', '--learning-starts', '100', '--eval-episodes', '1', '--out', str(out),
               '--quiet'])
    assert rc == 0
    assert sorted(p.name for p in out.glob('*.zip')) == ['Pendulum-v1_200_steps.zip',
                                                         'Pendulum-v1_400_steps.zip']
    rows = json.loads((out / 'returns.json').read_text())
    assert [r['steps'] for r in rows] == [200, 400]
    assert all(np.isfinite(r['return_mean']) for r in rows)
    # The folder works as --agents-dir for collection.
    cfg = CollectConfig(env='Pendulum-v1', out='test/pendulum/new-v0', steps=50,
                        agent='Pendulum-v1_400_steps.zip', agents_dir=str(out), n_envs=1)
    prov = collect(cfg, progress=False)
    assert prov['transitions'] == 50
