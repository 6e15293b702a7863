# SPDX-License-Identifier: Apache-2.0
"""Static checks of the ROS 2 package layout and the installed entry points."""
from pathlib import Path
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

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
    for sub in ('collect', 'collect-suite', 'train-expert', 'dataset-info', 'score', 'train',
                'demo'):
        assert sub in out


def test_readme_and_ci_share_the_test_command():
    readme = (ROOT / 'README.md').read_text()
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'make test' in ci and '`make test`' in readme
    assert '`make demo`' in readme
    assert 'colcon build' in readme


def test_colcon_build_installs_the_ament_layout(tmp_path):
    """The package builds with colcon as on a ROS 2 machine (colcon from PyPI here)."""
    colcon = shutil.which('colcon', path=str(Path(sys.executable).parent))
    if colcon is None:
        import pytest

        pytest.skip('colcon not installed (pip install -e .[test] installs it)')
    src = tmp_path / 'src' / 'dgm_policy_ros'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'build', 'install', 'log', 'data', 'runs', '__pycache__', '*.egg-info'))
    result = subprocess.run([colcon, 'build', '--packages-select', 'dgm_policy_ros'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / 'install' / 'dgm_policy_ros'
    share = prefix / 'share' / 'dgm_policy_ros'
    assert (prefix / 'share/ament_index/resource_index/packages/dgm_policy_ros').is_file()
    assert (share / 'package.xml').is_file()
    assert (share / 'sim' / 'recipes' / 'd4rl.yaml').is_file()
    assert (prefix / 'lib' / 'dgm_policy_ros' / 'dgm').is_file()  # `ros2 run dgm_policy_ros dgm`


def test_no_source_file_is_git_ignored():
    """An unanchored .gitignore pattern once hid a whole sub-package from fresh clones."""
    if not (ROOT / '.git').exists() or shutil.which('git') is None:
        import pytest

        pytest.skip('not a git checkout')
    sources = [str(p.relative_to(ROOT)) for folder in ('dgm_policy_ros', 'test', 'bench', 'sim',
                                                       'launch', 'config', 'models')
               for p in (ROOT / folder).rglob('*') if p.is_file() and '__pycache__' not in
               p.parts]
    result = subprocess.run(['git', 'check-ignore', '--stdin'], input='\n'.join(sources),
                            capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == '', f'git ignores source files: {result.stdout}'


def test_generated_docs_are_current():
    """docs/ros.md and the algorithms' settings tables come from the code (docs/generate.py)."""
    pytest.importorskip('rclpy', reason='rclpy not installed: the node modules need it')
    result = subprocess.run([sys.executable, str(ROOT / 'docs' / 'generate.py'), '--check'],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_links_resolve():
    for doc in [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]:
        for target in re.findall(r'\]\(([^)#\s]+)\)', doc.read_text()):
            if not target.startswith(('http://', 'https://')):
                assert (doc.parent / target).exists(), f'{doc.name} links to missing {target}'


def test_bench_is_a_package_run_with_python_m():
    """Benchmarks run as ``python -m bench.<name>``: none edits sys.path, all import."""
    import importlib

    for path in sorted((ROOT / 'bench').glob('*.py')):
        assert 'sys.path.insert' not in path.read_text(), path.name
        if path.stem not in ('__init__', 'echo_node', 'ros_loop'):  # these two need rclpy
            importlib.import_module(f'bench.{path.stem}')
