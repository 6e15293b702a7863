# SPDX-License-Identifier: Apache-2.0
"""Named cameras rendered offscreen with MuJoCo, headless: EGL, or OSMesa as the fallback.

Rendering for learning turns shadows, reflections and multisampling off (5-10x faster on the
CPU than MuJoCo's defaults, the images still clear at 84-96 px). A camera view names the
model's camera, the image size, an optional position override and whether the image comes out
upside down: orientation is fixed here, once, by the view (``flip``).

``LEROBOT_METAWORLD`` is LeRobot's MetaWorld view (camera ``corner2`` moved to
(0.75, 0.075, 0.7), flipped on both axes; proprio: the first 4 state values, hand position and
gripper), the default for MetaWorld tasks so results compare with LeRobot's.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from dgm_policy_ros.config import Config, ConfigError

GL_BACKENDS = ('egl', 'osmesa')


@dataclasses.dataclass
class CameraView(Config):
    camera: str  # the camera's name in the model
    width: int = 96
    height: int = 96
    position: Optional[list[float]] = None  # moves the camera (model coordinates)
    flip: bool = False  # the image comes out upside down: flip both axes

    def validate(self) -> None:
        if not (8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            raise ConfigError(f'camera {self.camera}: width and height must be in [8, 4096]')
        if self.position is not None and len(self.position) != 3:
            raise ConfigError(f'camera {self.camera}: position needs 3 values')


LEROBOT_METAWORLD = CameraView('corner2', 96, 96, position=[0.75, 0.075, 0.7], flip=True)
METAWORLD_PROPRIO = slice(0, 4)  # hand position (3) and gripper opening (1)


def default_proprio(env_id: str, state_size: int) -> list[int]:
    """The state elements an image policy sees beside its cameras (its proprioception): for
    MetaWorld LeRobot's, the hand position and gripper; elsewhere the whole state."""
    if env_id.startswith('metaworld/'):
        return list(range(state_size))[METAWORLD_PROPRIO]
    return list(range(state_size))


def default_views(env_id: str) -> list[CameraView]:
    if env_id.startswith('metaworld/'):
        return [LEROBOT_METAWORLD]
    raise ConfigError(f'{env_id}: no default camera view; name the cameras to render')


def use_headless_gl() -> str:
    """Pick MuJoCo's headless GL before its first context: MUJOCO_GL if set, else EGL."""
    backend = os.environ.setdefault('MUJOCO_GL', 'egl')
    if backend not in GL_BACKENDS:
        raise ConfigError(f'MUJOCO_GL={backend}: headless rendering needs one of {GL_BACKENDS}')
    return backend


class CameraRenderer:
    """Renders ``views`` of a MuJoCo model's current state: ``render(data)`` -> {camera: uint8
    (H, W, 3)}. One renderer per image size; the learning settings are applied to each."""

    def __init__(self, model: Any, views: list[CameraView]) -> None:
        use_headless_gl()
        import mujoco

        self.mujoco, self.model, self.views = mujoco, model, list(views)
        names = [model.camera(i).name for i in range(model.ncam)]
        self.ids = {}
        for view in self.views:
            if view.camera not in names:
                raise ConfigError(f'camera {view.camera!r} is not in the model (it has {names})')
            self.ids[view.camera] = model.camera(view.camera).id
            if view.position is not None:
                model.cam_pos[self.ids[view.camera]] = view.position
        model.vis.quality.offsamples = 0  # no multisampling (before the contexts are made)
        self.renderers: dict[tuple[int, int], Any] = {}
        try:
            for view in self.views:
                size = (view.height, view.width)
                if size not in self.renderers:
                    self.renderers[size] = mujoco.Renderer(model, *size)
        except Exception as exc:  # noqa: BLE001 - no GL: say which and why
            raise ConfigError(f"cannot render headless with MUJOCO_GL={os.environ['MUJOCO_GL']}"
                              f' (it must be set before MuJoCo is first imported): {exc}'
                              ) from exc

    def render(self, data: Any) -> dict[str, np.ndarray]:
        images = {}
        flags = self.mujoco.mjtRndFlag
        for view in self.views:
            renderer = self.renderers[(view.height, view.width)]
            renderer.update_scene(data, camera=self.ids[view.camera])
            renderer.scene.flags[flags.mjRND_SHADOW] = False
            renderer.scene.flags[flags.mjRND_REFLECTION] = False
            image = renderer.render()
            images[view.camera] = np.ascontiguousarray(image[::-1, ::-1] if view.flip
                                                       else image)
        return images

    def close(self) -> None:
        for renderer in self.renderers.values():
            renderer.close()
        self.renderers.clear()


def camera_views(env_id: str, cameras: list[str] | None, size: int | None = None
                 ) -> list[CameraView]:
    """The views to render: the named cameras as the model places them, or the task's default
    view(s) when none are named; ``size`` sets a square image size for all."""
    views = [CameraView(name) for name in cameras] if cameras else default_views(env_id)
    if size is not None:
        views = [view.replace(width=size, height=size) for view in views]
    return views


def with_cameras(env: Any, views: list[CameraView]):
    """``env`` whose observations are ``{'state': vector, 'images': {camera: uint8 (H, W, 3)}}``
    (the Minari Dict an image dataset stores), rendered after every reset and step."""
    import gymnasium as gym
    from gymnasium import spaces

    from dgm_policy_ros.data.episodes import IMAGES_KEY, STATE_KEY

    class CameraObservation(gym.ObservationWrapper):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.views = list(views)
            self.renderer = CameraRenderer(inner.unwrapped.model, self.views)
            self.observation_space = spaces.Dict({
                STATE_KEY: inner.observation_space,
                IMAGES_KEY: spaces.Dict({
                    v.camera: spaces.Box(0, 255, (v.height, v.width, 3), np.uint8)
                    for v in self.views})})

        def observation(self, observation: Any) -> dict[str, Any]:
            return {STATE_KEY: np.asarray(observation, np.float32),
                    IMAGES_KEY: self.renderer.render(self.env.unwrapped.data)}

        def close(self) -> None:
            self.renderer.close()
            super().close()

    return CameraObservation(env)
