# SPDX-License-Identifier: Apache-2.0
"""A bundle is input too: damaged and tampered copies are refused with one clear reason."""
import hashlib
import os
from pathlib import Path
import shutil

import numpy as np
import pytest
import yaml

from dgm_policy_ros.runtime import BundleError, PolicyRunner, load_bundle
from dgm_policy_ros.runtime.backends import BackendError

SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'hopper_flow_bc'


def copy_bundle(tmp_path, edit=None, name='bundle'):
    """The shipped bundle copied, its manifest edited by ``edit(manifest, folder)``."""
    folder = tmp_path / name
    shutil.copytree(SHIPPED, folder)
    manifest = yaml.safe_load((folder / 'manifest.yaml').read_text())
    manifest['action']['trained'] = {'low': [-1.0] * 3, 'high': [1.0] * 3}
    if edit is not None:
        edit(manifest, folder)
    (folder / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    return folder


def rehash(manifest, folder, name):
    manifest['files'][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()


def test_an_untampered_copy_loads(tmp_path):
    bundle = load_bundle(copy_bundle(tmp_path))
    assert bundle.act_size == 3


def _outside_graph(manifest, folder, path):
    elsewhere = folder.parent / 'elsewhere'
    elsewhere.mkdir(exist_ok=True)
    shutil.copyfile(folder / 'policy.onnx', elsewhere / 'policy.onnx')
    manifest['graphs']['policy'] = path
    manifest['files'][path] = manifest['files']['policy.onnx']


@pytest.mark.parametrize('case', ['parent', 'absolute', 'graph_link', 'manifest_link'])
def test_a_bundle_uses_only_files_inside_its_folder(tmp_path, case):
    if case == 'parent':
        folder = copy_bundle(tmp_path, lambda m, f: _outside_graph(m, f,
                                                                   '../elsewhere/policy.onnx'))
    elif case == 'absolute':
        folder = copy_bundle(tmp_path, lambda m, f: _outside_graph(
            m, f, str(tmp_path / 'elsewhere' / 'policy.onnx')))
    elif case == 'graph_link':  # same bytes, same hash: only the link gives it away
        folder = copy_bundle(tmp_path)
        shutil.copyfile(folder / 'policy.onnx', tmp_path / 'outside.onnx')
        (folder / 'policy.onnx').unlink()
        os.symlink(tmp_path / 'outside.onnx', folder / 'policy.onnx')
    else:
        other = copy_bundle(tmp_path, name='other')
        folder = copy_bundle(tmp_path)
        (folder / 'manifest.yaml').unlink()
        os.symlink(other / 'manifest.yaml', folder / 'manifest.yaml')
    with pytest.raises(BundleError, match='inside the bundle folder|outside the bundle folder'):
        PolicyRunner(folder, backend='onnxruntime-cpu')


def _truncate_graph(manifest, folder):
    data = (folder / 'policy.onnx').read_bytes()
    (folder / 'policy.onnx').write_bytes(data[:len(data) // 3])
    rehash(manifest, folder, 'policy.onnx')


def _pickle_graph(manifest, folder):
    import pickle

    (folder / 'policy.onnx').write_bytes(pickle.dumps({'weights': np.zeros(3)}))
    rehash(manifest, folder, 'policy.onnx')


def _set(path, value):
    def edit(manifest, folder):
        *parents, last = path.split('.')
        node = manifest
        for part in parents:
            node = node[part]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return edit


MALFORMED = {
    'format_version as a string': (_set('format_version', '1'), 'format_version must be'),
    'files: null': (_set('files', None), 'files must be a mapping'),
    'no action.low': (_set('action.low', KeyError), 'action.low is missing'),
    'action.low too short': (_set('action.low', [-1.0]), r'action.low must be a list of 3'),
    'unknown noise distribution': (
        lambda m, f: m['noise_inputs'][0].update(distribution='cauchy'),
        r'noise_inputs\[0\].distribution must be one of'),
    'NaN in the normalization': (
        lambda m, f: m['normalization']['obs_std'].__setitem__(2, float('nan')),
        r'normalization.obs_std\[2\] must be a finite number'),
    'chunk size as a float': (_set('chunk_size', 1.5), 'chunk_size must be an integer'),
    'inputs: a string': (_set('inputs', 'obs'), 'inputs must be a non-empty list'),
    'kind unknown': (_set('kind', 'toaster'), 'kind must be one of'),
    'a graph with no hash': (_set('graphs.log_prob', 'other.onnx'),
                             'log_prob .* has no hash'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_a_malformed_manifest_is_a_bundle_error_naming_the_field(tmp_path, case):
    edit, message = MALFORMED[case]
    with pytest.raises(BundleError, match=message):
        load_bundle(copy_bundle(tmp_path, edit))


def test_binary_garbage_or_an_unparsable_graph_is_refused_with_the_reason(tmp_path):
    garbage = copy_bundle(tmp_path, name='garbage')
    (garbage / 'manifest.yaml').write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BundleError, match=r'is not text \(UTF-8\)'):
        load_bundle(garbage)
    for name, edit in (('truncated', _truncate_graph), ('pickled', _pickle_graph)):
        folder = copy_bundle(tmp_path, edit, name=name)
        with pytest.raises(BackendError, match='ONNX Runtime cannot load'):
            PolicyRunner(folder, backend='onnxruntime-cpu')


@pytest.mark.parametrize('high', [5.0, float('inf'), -2.0])
def test_a_bundle_cannot_widen_or_invert_the_action_bounds(tmp_path, high):
    folder = copy_bundle(tmp_path, _set('action.high', [high, 1.0, 1.0]))
    expected = {5.0: 'exceed the range the model was trained on',
                float('inf'): r'action.high\[0\] must be a finite number',
                -2.0: r'action.low must be <= action.high'}[high]
    with pytest.raises(BundleError, match=expected):
        load_bundle(folder)


def test_dgm_eval_reports_a_damaged_bundle_in_one_line(tmp_path, capsys):
    from dgm_policy_ros.cli.main import main

    for name, edit in (('v', _set('format_version', '1')), ('t', _truncate_graph),
                       ('o', lambda m, f: _outside_graph(m, f, '../elsewhere/policy.onnx'))):
        folder = copy_bundle(tmp_path, edit, name=name)
        assert main(['eval', '--bundle', str(folder), '--episodes', '1',
                     '--backend', 'onnxruntime-cpu']) == 2
        err = capsys.readouterr().err
        assert err.startswith('dgm eval: error:') and 'Traceback' not in err
        assert len(err.strip().splitlines()) == 1
