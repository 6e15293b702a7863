# SPDX-License-Identifier: Apache-2.0
"""Typed configs: YAML round trip and clear failures."""
import dataclasses
from typing import Optional

import pytest

from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.sim.collect import CollectConfig, load_recipes


@dataclasses.dataclass
class Inner(Config):
    width: int = 64


@dataclasses.dataclass
class Outer(Config):
    name: str
    rate: float = 0.5
    layers: list[int] = dataclasses.field(default_factory=lambda: [1, 2])
    inner: Inner = dataclasses.field(default_factory=Inner)
    note: Optional[str] = None

    def validate(self):
        if self.rate <= 0:
            raise ConfigError('Outer.rate must be > 0')


def test_yaml_round_trip(tmp_path):
    cfg = Outer(name='x', rate=2, layers=[3], inner=Inner(width=8), note='n')
    assert isinstance(cfg.rate, float)
    assert Outer.from_yaml(cfg.to_yaml()) == cfg
    cfg.save(tmp_path / 'c.yaml')
    assert Outer.load(tmp_path / 'c.yaml') == cfg
    collect = CollectConfig(env='Hopper-v5', out='dgm/hopper/x-v0', steps=10, noise=0.1)
    assert CollectConfig.from_yaml(collect.to_yaml()) == collect


@pytest.mark.parametrize('data,message', [
    ({'name': 'x', 'rat': 1.0}, r"unknown key\(s\) \['rat'\]"),
    ({'name': 'x', 'rate': 'fast'}, 'Outer.rate: expected a number'),
    ({'name': 'x', 'rate': -1.0}, 'Outer.rate must be > 0'),
    ({'name': 'x', 'inner': {'width': 'wide'}}, 'Inner.width: expected an integer'),
    ({'rate': 1.0}, 'Outer: .*name'),
])
def test_bad_configs_fail_clearly(data, message):
    with pytest.raises(ConfigError, match=message):
        Outer.from_dict(data)


def test_numbers_in_exponent_form_read_from_yaml():
    # PyYAML (YAML 1.1) leaves 1e-3 and 1e5 as strings; a user writes them all the same.
    cfg = Outer.from_yaml('name: x\nrate: 1e-3\ninner: {width: 1e2}\n')
    assert cfg.rate == 0.001 and cfg.inner.width == 100 and isinstance(cfg.inner.width, int)
    assert Outer.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ConfigError, match='Inner.width: expected an integer'):
        Inner.from_yaml('width: 1.5e0\n')
    with pytest.raises(ConfigError, match='expected a number'):
        Outer.from_dict({'name': 'x', 'rate': '1e-3 per step'})
    assert Outer.from_yaml('name: 1e3\n').name == '1e3'  # a string field keeps its text


def test_shipped_recipes_parse():
    for env in ('Hopper-v5', 'HalfCheetah-v5'):
        recipes = load_recipes(env)
        assert {'random', 'medium', 'expert', 'medium-expert', 'mixed'} <= set(recipes)
        assert recipes['medium-expert'].concat == ['medium', 'expert']
    with pytest.raises(ConfigError, match='no dataset recipes for Ant-v5'):
        load_recipes('Ant-v5')


def test_shipped_training_recipes_are_what_dgm_train_takes():
    """config/recipes/metaworld/<algo>.yaml: whole TrainConfigs but the dataset and the run
    folder, for the five families the manipulation benchmark trains with them."""
    from pathlib import Path

    import yaml

    from dgm_policy_ros.training.trainer import TrainConfig

    folder = Path(__file__).resolve().parents[1] / 'config' / 'recipes' / 'metaworld'
    recipes = sorted(folder.glob('*.yaml'))
    assert {p.stem for p in recipes} == {'bc', 'diffusion_bc', 'cvae_bc', 'flow_bc', 'gan_bc'}
    for path in recipes:
        cfg = TrainConfig.from_dict({**yaml.safe_load(path.read_text()), 'dataset': 'd',
                                     'out': 'o'})
        assert cfg.algo == path.stem and cfg.algorithm_config().batch_size == 64


def test_training_options_come_from_train_config_fields():
    """Each option of ``dgm train`` is a TrainConfig field: its type, its comment as the help
    text, and only what was typed overrides the YAML config."""
    import argparse
    import dataclasses

    from dgm_policy_ros.cli.common import config_overrides
    from dgm_policy_ros.cli.training_commands import RUN_FIELDS, TRAIN_FIELDS, add_run_options
    from dgm_policy_ros.config import field_comments
    from dgm_policy_ros.training.train_config import TrainConfig

    parser = argparse.ArgumentParser()
    add_run_options(parser, RUN_FIELDS + TRAIN_FIELDS)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(RUN_FIELDS + TRAIN_FIELDS) <= names
    args = parser.parse_args(['--out', 'r', '--steps', '7', '--synthetic-ratio', '0.5',
                              '--seed', '0'])
    assert config_overrides(args, RUN_FIELDS + TRAIN_FIELDS) == {
        'out': 'r', 'steps': 7, 'synthetic_ratio': 0.5, 'seed': 0}  # a typed 0 counts
    helps = {a.dest: a.help for a in parser._actions}
    assert helps['eval_every'].startswith(field_comments(TrainConfig)['eval_every'])
    assert '(default 10000)' in helps['eval_every']
    with pytest.raises(SystemExit):
        parser.parse_args(['--steps', '7'])  # --out is required
