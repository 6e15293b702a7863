# SPDX-License-Identifier: Apache-2.0
"""Static checks of the ROS 2 package layout and the installed entry points."""
from pathlib import Path
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format3_ament_python_with_runtime_deps():
    tree = ET.parse(ROOT / 'package.xml').getroot()
    assert tree.get('format') == '3'
    assert tree.findtext('name') == 'dgm_policy_ros'
    assert tree.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in tree.findall('exec_depend')}
    for dep in ('rclpy', 'std_msgs', 'sensor_msgs', 'diagnostic_msgs', 'lifecycle_msgs',
                'std_srvs', 'launch', 'launch_ros'):
        assert dep in exec_deps, f'package.xml lacks exec_depend {dep}'
    version = re.search(r"version='([^']+)'", (ROOT / 'setup.py').read_text()).group(1)
    assert tree.findtext('version') == version, 'package.xml and setup.py versions differ'


def test_ament_layout():
    assert (ROOT / 'resource' / 'dgm_policy_ros').is_file()
    cfg = (ROOT / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/dgm_policy_ros' in cfg
    assert 'install_scripts=$base/lib/dgm_policy_ros' in cfg
    for folder in ('dgm_policy_ros', 'launch', 'models', 'test', 'sim'):
        assert (ROOT / folder).is_dir(), folder
    setup = (ROOT / 'setup.py').read_text()
    for share in ("'share/' + PACKAGE + '/launch'", "'share/' + PACKAGE + '/config'",
                  "share_tree('models')", "share_tree('sim')", 'resource_index/packages'):
        assert share in setup, f'setup.py does not install {share}'


def test_torch_pinned_and_ros_wheels_optional():
    setup = (ROOT / 'setup.py').read_text()
    assert "'torch==2.13.0'" in setup
    install_requires = re.search(r'install_requires=\[([^\]]*)\]', setup).group(1)
    assert 'torch' not in install_requires and 'ros-' not in install_requires


def test_dgm_help_lists_subcommands():
    exe = shutil.which('dgm', path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, '-m', 'dgm_policy_ros.cli.main']
    out = subprocess.run([*cmd, '--help'], capture_output=True, text=True, check=True).stdout
    for sub in ('collect', 'collect-suite', 'train-expert', 'dataset-info', 'score', 'demo'):
        assert sub in out


def test_readme_and_ci_share_the_test_command():
    readme = (ROOT / 'README.md').read_text()
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'make test' in ci and '`make test`' in readme
    assert '`make demo`' in readme
    assert 'colcon build' in readme
