# SPDX-License-Identifier: Apache-2.0
"""MetaWorld v3 tasks by name, their scripted experts, and success as the metric."""
import numpy as np
import pytest

pytest.importorskip('metaworld', reason='metaworld not installed (make venv installs it)')

from dgm_policy_ros.sim.environments import make_env  # noqa: E402
from dgm_policy_ros.sim.metaworld_tasks import ORIGINAL, ScriptedExpert, task_names  # noqa: E402


def test_metaworld_still_needs_the_weld_fix():
    """Fails once MetaWorld writes weld rows this MuJoCo accepts: then drop the fix."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    task_names()
    assert 'reset_mocap_welds' in ORIGINAL, 'MetaWorld runs on this MuJoCo unpatched'
    env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE['reach-v3-goal-observable']()
    with pytest.raises(ValueError, match='broadcast'):
        ORIGINAL['reset_mocap_welds'](env)


@pytest.mark.slow
def test_every_task_works_by_name_and_resets_by_seed():
    names = task_names()
    assert len(names) == 50
    for name in names:
        env = make_env(f'metaworld/{name}')
        first = env.reset(seed=3)[0]
        assert first.shape == (39,) and env.action_space.shape == (4,)
        np.testing.assert_array_equal(env.reset(seed=3)[0], first)
        other = make_env(f'metaworld/{name}')  # another process's env: the same placement
        np.testing.assert_array_equal(other.reset(seed=3)[0], first)
        other.close()
        _, _, _, _, info = env.step(np.zeros(4, np.float32))
        assert 'success' in info
        assert env.spec.max_episode_steps == 500
        env.close()


def test_unknown_tasks_are_refused_with_the_list():
    from dgm_policy_ros.config import ConfigError

    with pytest.raises(ConfigError, match='not a MetaWorld v3 task; known: .*reach-v3'):
        make_env('metaworld/fly-v3')


def test_scripted_experts_succeed_and_success_is_the_metric():
    from dgm_policy_ros.sim.evaluate import evaluate

    for task in ('reach-v3', 'push-v3', 'pick-place-v3'):
        expert = ScriptedExpert(task)
        result = evaluate(lambda obs, e=expert: e.act(obs)[:, None, :], f'metaworld/{task}',
                          episodes=3, seed=0)
        summary = result.summary()
        assert summary['success_rate'] >= 2 / 3, (task, summary)
        assert 'score_mean' not in summary  # no D4RL reference for MetaWorld
    # Locomotion reports no success: no success rate.
    hopper = evaluate(lambda obs: np.zeros((len(obs), 1, 3), np.float32), 'Hopper-v5', 1)
    assert hopper.successes is None and 'success_rate' not in hopper.summary()


@pytest.mark.slow
def test_collect_the_expert_into_a_dataset_the_loader_accepts(minari_root):
    from dgm_policy_ros.data.minari_io import load_dataset
    from dgm_policy_ros.sim.collect import CollectConfig, collect

    prov = collect(CollectConfig(env='metaworld/reach-v3', agent='expert', episodes=2,
                                 out='test/metaworld/reach-expert-v0', n_envs=2),
                   progress=False)
    assert prov['behaviour'][0]['type'] == 'metaworld scripted expert'
    loaded = load_dataset('test/metaworld/reach-expert-v0')
    assert loaded.obs_dim == 39 and loaded.act_dim == 4 and len(loaded.episodes) == 2


def test_the_simulator_node_runs_a_metaworld_task_and_says_success():
    import json

    rclpy = pytest.importorskip('rclpy', reason='rclpy not installed')
    from rclpy.parameter import Parameter

    from dgm_policy_ros.ros.mujoco_sim_node import MujocoSimNode

    rclpy.init()
    try:
        node = MujocoSimNode('sim_metaworld', parameter_overrides=[
            Parameter('env_id', value='metaworld/reach-v3'), Parameter('mode', value='lockstep'),
            Parameter('publish_clock', value=False)])
        ends = []
        node.pub_end.publish = lambda msg: ends.append(json.loads(msg.data))
        expert = ScriptedExpert('reach-v3')
        while not ends:
            node._step(expert.act(node.obs)[0])
        assert ends[0]['success'] is True and ends[0]['length'] < 500  # ends at success
        assert node.obs.shape == (39,)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
