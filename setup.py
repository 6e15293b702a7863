# SPDX-License-Identifier: Apache-2.0
"""ament_python build of dgm_policy_ros; also a plain pip-installable package with role extras."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'dgm_policy_ros'


def share_tree(folder):
    """(install dir, files) pairs that mirror ``folder`` under share/<package>/."""
    pairs = []
    for root, _dirs, files in os.walk(folder):
        files = [os.path.join(root, f) for f in files if not f.endswith(('.pyc', '.md~'))]
        if files:
            pairs.append((os.path.join('share', PACKAGE, root), files))
    return pairs


ROS_WHEELS = [
    # Real ROS 2 (Kilted) wheels from PyPI, for machines without a system ROS 2 install.
    # On a robot rclpy comes from /opt/ros/<distro>: never make these a hard requirement.
    'ros-rclpy', 'ros-rmw-fastrtps-cpp', 'ros-std-msgs', 'ros-sensor-msgs',
    'ros-diagnostic-msgs', 'ros-lifecycle-msgs', 'ros-std-srvs', 'ros-geometry-msgs',
    'ros-trajectory-msgs', 'ros-nav-msgs',
]

EXTRAS = {
    # torch==2.13.0 is pinned on purpose: a looser range pulls a multi-GB CUDA build.
    'train': ['torch==2.13.0', 'safetensors>=0.4', 'tensorboard>=2.14', 'tqdm>=4.66',
              'rich>=13', 'matplotlib>=3.7', 'onnx>=1.16', 'onnxconverter-common>=1.14'],
    # scipy, imageio: MetaWorld's own dependencies (it is installed --no-deps: Makefile).
    'sim': ['mujoco>=3.1', 'gymnasium[mujoco]>=1.0', 'minari[create]>=0.5.1',
            'stable-baselines3>=2.3', 'tqdm>=4.66', 'scipy>=1.4.1', 'imageio>=2.9'],
    'ros-wheels': ROS_WHEELS,
    'bags': ['rosbags>=0.10', 'mcap>=1.2'],  # mcap: reading bags cut short (no footer)
    # d3rlpy 2.8.1 pins gymnasium==1.0.0, which would downgrade the simulator stack the
    # reference agents were trained on; it runs on gymnasium 1.x, so `make bench-deps`
    # installs it with --no-deps on top of these, its other requirements.
    'bench': ['dataclasses-json', 'structlog', 'h5py', 'scikit-learn', 'gym==0.26.2',
              'narwhals', 'colorama', 'click', 'typing-inspect'],
    'test': ['pytest>=7', 'pytest-timeout>=2.2', 'ruff>=0.5', 'h5py>=3.8',
             'colcon-common-extensions'],
}

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'bench.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml')),
        *share_tree('models'),
        *share_tree('sim'),
    ],
    python_requires='>=3.10',
    # The deployment runtime: torch-free on purpose (see README, "Design").
    install_requires=['numpy>=1.23', 'onnxruntime>=1.16', 'pyyaml>=6', 'pillow>=9'],
    extras_require=EXTRAS,
    zip_safe=True,
    maintainer='dgm_policy_ros developers',
    maintainer_email='dev@dgm-policy-ros.invalid',
    description='Deep generative model policies for ROS 2: train offline, deploy torch-free.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'dgm = dgm_policy_ros.cli.main:main',
            'policy_node = dgm_policy_ros.ros.policy_node:main',
            'mujoco_sim_node = dgm_policy_ros.ros.mujoco_sim_node:main',
            'world_model_node = dgm_policy_ros.ros.world_model_node:main',
        ],
    },
)
