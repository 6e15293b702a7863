# SPDX-License-Identifier: Apache-2.0
"""Headless camera rendering speed: the learning settings (no shadows, reflections or
multisampling) against MuJoCo's defaults, side by side in one run (bench/results/cameras.md).

    python -m bench.cameras [--tasks reach-v3 pick-place-v3] [--frames 300]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import Table, write_result


def frames_per_second(env, view, learning: bool, frames: int) -> float:
    import mujoco

    from dgm_policy_ros.sim.cameras import CameraRenderer

    model, data = env.unwrapped.model, env.unwrapped.data
    samples = model.vis.quality.offsamples
    if learning:
        renderer = CameraRenderer(model, [view])
        render = lambda: renderer.render(data)  # noqa: E731
    else:  # MuJoCo's defaults: multisampling as the model says, shadows and reflections on
        model.vis.quality.offsamples = samples or 4
        plain = mujoco.Renderer(model, view.height, view.width)
        camera = model.camera(view.camera).id

        def render():
            plain.update_scene(data, camera=camera)
            return plain.render()
    expert_step = np.zeros(env.action_space.shape, np.float32)
    env.reset(seed=0)  # a fresh episode for each measurement (episodes end at 500 steps)
    for _ in range(10):
        render()
    started = time.perf_counter()
    for _ in range(frames):
        env.step(expert_step)
        render()
    elapsed = time.perf_counter() - started
    model.vis.quality.offsamples = samples
    return frames / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', default=['reach-v3', 'pick-place-v3'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[84, 96])
    parser.add_argument('--frames', type=int, default=300, help='at most 490 (one episode)')
    args = parser.parse_args(argv)
    from dgm_policy_ros.sim.cameras import LEROBOT_METAWORLD, CameraView
    from dgm_policy_ros.sim.environments import make_env

    lines = [f"MetaWorld's LeRobot view (`corner2`, moved and flipped), headless "
             f"MUJOCO_GL={os.environ.get('MUJOCO_GL')} on this machine's CPU (Mesa may use "
             f'every core); frames per second over {args.frames} environment steps, each '
             "rendering one frame. MuJoCo defaults: 4x multisampling (or the model's), "
             'shadows and reflections on. Both settings in the same run.', '']
    table = Table('task', 'size (px)', 'learning settings (fps)', 'MuJoCo defaults (fps)',
                  'speed-up', echo=True)
    for task in args.tasks:
        for size in args.sizes:
            env = make_env(f'metaworld/{task}')
            env.reset(seed=0)
            view = CameraView(LEROBOT_METAWORLD.camera, size, size,
                              position=LEROBOT_METAWORLD.position, flip=True)
            fast = frames_per_second(env, view, True, args.frames)
            slow = frames_per_second(env, view, False, args.frames)
            table.add(task, size, f'{fast:.0f}', f'{slow:.0f}', f'{fast / slow:.1f}x')
            env.close()
    body = '\n'.join(lines + table.lines()) + '\n'
    write_result('cameras', 'Headless camera rendering: learning settings vs MuJoCo defaults',
                 body)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
