# SPDX-License-Identifier: Apache-2.0
"""Headless camera rendering (skips with the reason where no GL context can be made)."""
import numpy as np
import pytest

from dgm_policy_ros.config import ConfigError


@pytest.fixture
def reach():
    pytest.importorskip('metaworld', reason='metaworld not installed (make venv installs it)')
    from dgm_policy_ros.sim.environments import make_env

    env = make_env('metaworld/reach-v3')
    env.reset(seed=0)
    yield env
    env.close()


def _renderer(model, views):
    from dgm_policy_ros.sim.cameras import CameraRenderer

    try:
        return CameraRenderer(model, views)
    except ConfigError as exc:
        if 'cannot render headless' in str(exc):
            pytest.skip(str(exc))
        raise


def test_the_lerobot_metaworld_view_renders_upright_at_96_px(reach):
    from dgm_policy_ros.sim.cameras import LEROBOT_METAWORLD, CameraView, default_views

    assert default_views('metaworld/reach-v3') == [LEROBOT_METAWORLD]
    model, data = reach.unwrapped.model, reach.unwrapped.data
    renderer = _renderer(model, [LEROBOT_METAWORLD, CameraView('topview', 64, 48)])
    images = renderer.render(data)
    view = images['corner2']
    assert view.shape == (96, 96, 3) and view.dtype == np.uint8 and view.std() > 10
    assert images['topview'].shape == (48, 64, 3)
    np.testing.assert_allclose(model.cam_pos[model.camera('corner2').id], [0.75, 0.075, 0.7])
    # Flipped on both axes, once, by the view: the unflipped render is its mirror image.
    raw = _renderer(model, [CameraView('corner2', 96, 96)]).render(data)['corner2']
    np.testing.assert_array_equal(view, raw[::-1, ::-1])
    assert model.vis.quality.offsamples == 0
    renderer.close()


def test_unknown_cameras_and_bad_sizes_are_refused(reach):
    from dgm_policy_ros.sim.cameras import CameraView

    with pytest.raises(ConfigError, match="camera 'nose' is not in the model"):
        _renderer(reach.unwrapped.model, [CameraView('nose')])
    with pytest.raises(ConfigError, match='width and height'):
        CameraView('corner2', width=2)
