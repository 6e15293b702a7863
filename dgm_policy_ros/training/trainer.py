# SPDX-License-Identifier: Apache-2.0
"""``dgm train``: one training loop for every registered algorithm.

A run folder holds ``config.yaml`` (the run and algorithm configs), ``spec.json`` (sizes,
normalization, action bounds, dataset), ``checkpoints/`` (resumable state), ``metrics.csv`` and
``tensorboard/`` (losses and evaluations), ``model.safetensors`` (final weights) and
``learning_curve.png``. ``--resume`` continues a killed run from its last checkpoint and ends
with the same parameters an uninterrupted run would have.

Multi-process: started by ``torchrun`` (WORLD_SIZE > 1), ranks train DDP-wrapped modules on
different batches (gloo on CPUs, nccl on GPUs, one GPU per rank); rank 0 writes everything.
``device`` picks CPU or GPU; a run may resume on another device than it started on.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any, Callable

import numpy as np
import torch

from dgm_policy_ros.config import ConfigError
from dgm_policy_ros.data.minari_io import LoadedDataset, load_dataset
from dgm_policy_ros.data.normalization import DatasetSplit
from dgm_policy_ros.training.algorithm import Algorithm, DataSpec, to_tensors
from dgm_policy_ros.training.checkpoint import load_checkpoint, load_weights, save_checkpoint
from dgm_policy_ros.training.device import resolve_device
from dgm_policy_ros.training.logger import RunLogger, plot_learning_curve
from dgm_policy_ros.training.registry import get_algorithm
from dgm_policy_ros.training.run_folder import (
    read_yaml,
    spec_from_dict,
    spec_to_dict,
    weights_bytes,
)
from dgm_policy_ros.training.train_config import TrainConfig
from dgm_policy_ros.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_yaml

Evaluate = Callable[[Path, int, int], dict[str, float]]

log = logging.getLogger(__name__)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False,
                 evaluate: Evaluate | None = None) -> None:
        """``evaluate``: scores a run folder holding one step's weights, ``(folder,
        episodes, seed) -> {metric: value}``; the trainer does not know how (the workflows
        layer exports and scores what ships). Needed when ``cfg`` asks for evaluation."""
        self.cfg = cfg
        self.evaluate = evaluate
        self.run_dir = Path(cfg.out)
        self.resume = resume
        self.world_size = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.device = resolve_device(cfg.device)  # refused here, before anything is read

    # ------------------------------------------------------------------ set-up
    def _check_resume(self) -> None:
        saved = self.run_dir / 'config.yaml'
        if self.resume:
            if not saved.is_file():
                raise ConfigError(f'--resume: {self.run_dir} has no config.yaml')
            old = TrainConfig.from_dict(read_yaml(saved))
            keys = ('algo', 'dataset', 'seed', 'val_fraction', 'checkpoint_every', 'init_from',
                    'extra_transitions', 'synthetic_ratio')
            diff = [k for k in keys if getattr(old, k) != getattr(self.cfg, k)]
            # The request is either the run's own config.yaml (saved) or a config given
            # again as for a new run; either way it must resolve to what the run started with.
            started = old.algorithm_config(saved=True)
            if not diff and started not in (self.cfg.algorithm_config(),
                                            self.cfg.algorithm_config(saved=True)):
                diff.append('algo_config')
            if diff:
                raise ConfigError(f'--resume: the run was started with different {diff}')
            self.cfg = dataclasses.replace(self.cfg, algo_config=started.to_dict())
        elif (self.run_dir / 'checkpoints' / 'latest.json').is_file():
            raise ConfigError(f'{self.run_dir} already holds a run: pass --resume to continue '
                              'it or choose another --out')

    def _data(self) -> tuple[LoadedDataset, DatasetSplit, DataSpec]:
        ds = load_dataset(self.cfg.dataset)
        split = DatasetSplit.load_or_create(ds.path, ds.episodes, self.cfg.val_fraction,
                                            self.cfg.seed)
        low, high = ds.action_bounds
        returns = [float(np.sum(ds.episodes[i].rewards)) for i in split.train_episodes]
        spec = DataSpec(ds.obs_dim, ds.act_dim, split.stats, low, high, max(returns))
        spec = self._observation_choice(ds, spec)
        if self.cfg.init_from:
            parent = spec_from_dict(json.loads(
                (Path(self.cfg.init_from) / 'spec.json').read_text())['spec'])
            if (parent.obs_dim, parent.act_dim) != (spec.obs_dim, spec.act_dim):
                raise ConfigError(f'init_from {self.cfg.init_from} has observation/action '
                                  f'sizes {parent.obs_dim}/{parent.act_dim}, the dataset '
                                  f'{spec.obs_dim}/{spec.act_dim}')
            spec = parent  # the network was trained on these inputs: keep them
        return ds, split, spec

    def _observation_choice(self, ds: LoadedDataset, spec: DataSpec) -> DataSpec:
        """What the policy sees of a dataset with cameras: the images and a choice of state
        elements (its proprioception) for a policy that sees images, else the state alone.
        The episodes are cut to match, so samplers and statistics see the same."""
        if not ds.image_shapes:
            return spec
        algo_cfg = self.cfg.algorithm_config()
        if not (get_algorithm(self.cfg.algo).sees_images and algo_cfg.use_images):
            ds.episodes = [ep.without_images() for ep in ds.episodes]
            return spec
        indices = algo_cfg.state_indices or ds.provenance.get('proprio_indices') or \
            list(range(ds.obs_dim))
        if max(indices) >= ds.obs_dim:
            raise ConfigError(f'state_indices {indices} reach past the dataset state '
                              f'({ds.obs_dim} values)')
        ds.episodes = [dataclasses.replace(ep, observations=ep.observations[:, indices])
                       for ep in ds.episodes]
        stats = dataclasses.replace(spec.stats, obs_mean=spec.stats.obs_mean[indices],
                                    obs_std=spec.stats.obs_std[indices])
        return dataclasses.replace(spec, obs_dim=len(indices), stats=stats,
                                   image_shapes=ds.image_shapes, state_indices=tuple(indices),
                                   cameras=tuple(ds.provenance.get('cameras') or ()))

    # ------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        distributed = self.world_size > 1
        if distributed:
            if self.device.type == 'cuda':
                torch.cuda.set_device(self.device)
            torch.distributed.init_process_group('nccl' if self.device.type == 'cuda'
                                                 else 'gloo')
        try:
            return self._run(distributed)
        finally:
            if distributed:
                torch.distributed.destroy_process_group()

    def _run(self, distributed: bool) -> dict[str, Any]:
        self._check_resume()  # on resume, self.cfg takes the run's own algorithm config
        cfg = self.cfg
        lead = self.rank == 0
        torch.manual_seed(cfg.seed)
        ds, split, spec = self._data()
        algo_cfg = cfg.algorithm_config()
        algo: Algorithm = get_algorithm(cfg.algo)(algo_cfg, spec)
        if cfg.init_from and not self.resume:
            load_weights(Path(cfg.init_from) / 'model.safetensors', algo)
        # Moving keeps the parameters' identity, so the optimizers built with them still
        # hold them; optimizer state loaded below follows its parameters' device.
        algo.to(self.device)
        train_eps = [ds.episodes[i] for i in split.train_episodes]
        # World models are scored on held-out episodes, not in MuJoCo.
        world_model = algo.kind == 'world_model'
        held_out = [ds.episodes[i] for i in split.val_episodes] or train_eps
        sampler = self._sampler(algo, train_eps, cfg.seed + 7 * self.rank)
        if distributed:
            algo.enable_ddp()
        env_id = cfg.eval_env or ds.env_id
        if env_id and not world_model and cfg.eval_every >= 0 and self.evaluate is None:
            raise ConfigError('this run asks for evaluation (eval_every >= 0 and an '
                              'environment) but the trainer was given no evaluate function; '
                              'dgm train gives it one, or set eval_every: -1')
        start = 0
        ckpt_dir = self.run_dir / 'checkpoints'
        if self.resume:
            meta = load_checkpoint(ckpt_dir, algo, algo.optimizers())
            start = int(meta['step'])
            sampler.set_state(meta['extra']['sampler_state'][str(self.rank)]
                              if str(self.rank) in meta['extra']['sampler_state']
                              else meta['extra']['sampler_state']['0'])
        if lead:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # The whole resolved algorithm config, so later changes of defaults cannot change
            # how these weights are read.
            atomic_write_yaml(self.run_dir / 'config.yaml',
                              dataclasses.replace(cfg, algo_config=algo_cfg.to_dict()).to_dict())
            atomic_write_json(self.run_dir / 'spec.json', {
                'spec': spec_to_dict(spec), 'dataset_id': ds.dataset_id, 'env_id': env_id,
                'algo': cfg.algo, 'family': algo.family, 'chunk_size': algo.chunk_size,
                'n_action_steps': algo.n_action_steps,
                'noise_inputs': [n.to_dict() for n in algo.noise_specs()],
                'algo_config': algo_cfg.to_dict(), 'world_size': self.world_size,
                'control_rate_hz': ds.provenance.get('control_rate_hz')})
        logger = RunLogger(self.run_dir, resume_step=start if self.resume else None,
                           tensorboard=cfg.tensorboard) if lead else None
        bar = self._progress(start, lead)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        started = time.perf_counter()
        eval_seconds = 0.0
        last_eval: dict[str, float] = {}
        eval_errors: list[str] = []
        algo.train()
        try:
            for step in range(start + 1, cfg.steps + 1):
                losses = algo.update(to_tensors(sampler.sample(), self.device))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    means = {f'train/{k}': sums[k] / counts[k] for k in sums}
                    for k, v in means.items():
                        if not np.isfinite(v):
                            raise FloatingPointError(f'{k} became {v} at step {step}')
                    elapsed = time.perf_counter() - started
                    means['train/steps_per_s'] = (step - start) / max(elapsed, 1e-9)
                    if logger:
                        logger.log(step, means)
                    bar.set_postfix({k.split('/')[-1]: f'{v:.3g}' for k, v in means.items()})
                    sums, counts = {}, {}
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    self._checkpoint(ckpt_dir, step, algo, sampler, lead)
                if step == cfg.steps and lead:  # the weights first: an evaluation may fail
                    atomic_write_bytes(self.run_dir / 'model.safetensors', weights_bytes(algo))
                if (env_id or world_model) and lead and self._eval_due(step):
                    eval_started = time.perf_counter()
                    try:
                        last_eval = algo.metrics(held_out, seed=cfg.seed) if world_model \
                            else self._evaluate(algo)
                    except Exception as exc:  # noqa: BLE001 - never fatal to the training
                        last_eval = {}
                        eval_errors.append(f'step {step}: {type(exc).__name__}: {exc}')
                        log.error('evaluation at step %d failed (training goes on): %s', step,
                                  eval_errors[-1], exc_info=True)
                    eval_seconds += time.perf_counter() - eval_started
                    if logger and last_eval:  # numbers only (evaluate may say how it scored)
                        logger.log(step, {f'eval/{k}': v for k, v in last_eval.items()
                                          if isinstance(v, (int, float))})
        finally:
            bar.close()
            if logger:
                logger.close()
        wall = time.perf_counter() - started
        # Gradient-step throughput excludes evaluation (it is not training cost).
        result = {'steps': cfg.steps, 'resumed_from': start, 'wall_s': wall,
                  'eval_s': eval_seconds,
                  'steps_per_s': (cfg.steps - start) / max(wall - eval_seconds, 1e-9),
                  **last_eval}
        if eval_errors:  # recorded and reported; the weights are written all the same
            result['eval_errors'] = eval_errors
        if lead:
            atomic_write_bytes(self.run_dir / 'model.safetensors', weights_bytes(algo))
            atomic_write_json(self.run_dir / 'result.json', result)
            plot_learning_curve(self.run_dir, f'{cfg.algo} on {ds.dataset_id}')
        if distributed:
            self._write_rank_digest(algo)
        return result

    def _sampler(self, algo: Algorithm, episodes, seed: int):
        cfg = self.cfg
        if not cfg.extra_transitions:
            return algo.make_sampler(episodes, seed)
        from dgm_policy_ros.data.samplers import (
            MixedSampler,
            TransitionSampler,
            transitions_from_arrays,
        )
        from dgm_policy_ros.data.transitions import flatten_episodes
        from dgm_policy_ros.data.transitions_file import load_transitions

        if algo.sampler_kind != 'transitions':
            raise ConfigError(f'{cfg.algo} learns from sequences or chunks; extra transitions '
                              'only mix into transition-sampling algorithms')
        if algo.vision is not None:
            raise ConfigError('extra transitions hold no camera frames: a policy that sees '
                              'images cannot mix them in (use_images: false trains on the '
                              'state)')
        arrays, _ = load_transitions(cfg.extra_transitions)
        extra = transitions_from_arrays(arrays)
        if extra.observations.shape[1:] != (algo.spec.obs_dim,) or \
                extra.actions.shape[1:] != (algo.spec.act_dim,):
            raise ConfigError(f"{cfg.extra_transitions} does not match the dataset's sizes")
        real = flatten_episodes(episodes)
        if cfg.synthetic_ratio is None:  # one pool: each transition equally likely
            merged = {k: np.concatenate([getattr(real, k), getattr(extra, k)]) for k in (
                'observations', 'actions', 'rewards', 'next_observations', 'terminals')}
            return TransitionSampler(transitions_from_arrays(merged), algo.cfg.batch_size, seed)
        return MixedSampler(TransitionSampler(real, algo.cfg.batch_size, seed),
                            TransitionSampler(extra, algo.cfg.batch_size, seed + 1),
                            cfg.synthetic_ratio)

    def _eval_due(self, step: int) -> bool:
        every = self.cfg.eval_every
        if every < 0:
            return False
        return step == self.cfg.steps or (every > 0 and step % every == 0)

    def _evaluate(self, algo: Algorithm) -> dict[str, float]:
        """Score the current weights with ``self.evaluate`` on a snapshot run folder. Its
        runner draws noise from its own generator, so evaluating never perturbs the training
        RNG streams and a resumed run computes what an uninterrupted one does."""
        # Rebuilding the model for export initializes layers from torch's generator: fork it,
        # or a run evaluated after a checkpoint would go on differently from one resumed there.
        with tempfile.TemporaryDirectory(prefix='dgm-eval-') as tmp, \
                torch.random.fork_rng(devices=[]):
            snapshot = Path(tmp) / 'run'  # a run folder holding this step's weights
            snapshot.mkdir()
            for name in ('config.yaml', 'spec.json'):  # spec.json names the env
                shutil.copyfile(self.run_dir / name, snapshot / name)
            (snapshot / 'model.safetensors').write_bytes(weights_bytes(algo))
            return dict(self.evaluate(snapshot, self.cfg.eval_episodes, self.cfg.seed))

    def _checkpoint(self, folder: Path, step: int, algo: Algorithm, sampler, lead: bool) -> None:
        states = [sampler.get_state()]
        if torch.distributed.is_initialized():
            gathered: list[Any] = [None] * self.world_size
            torch.distributed.all_gather_object(gathered, sampler.get_state())
            states = gathered
        if lead:
            save_checkpoint(folder, step, algo, algo.optimizers(),
                            extra={'sampler_state': {str(i): s for i, s in enumerate(states)}})

    def _write_rank_digest(self, algo: Algorithm) -> None:
        """Each rank records a digest of its parameters: DDP keeps them identical."""
        import hashlib

        digest = hashlib.sha256()
        for _, value in sorted(algo.state_dict().items()):
            digest.update(value.detach().cpu().numpy().tobytes())
        atomic_write_json(self.run_dir / f'rank{self.rank}_params.json',
                          {'rank': self.rank, 'world_size': self.world_size,
                           'sha256': digest.hexdigest()})

    def _progress(self, start: int, lead: bool):
        from tqdm.auto import tqdm

        return tqdm(total=self.cfg.steps, initial=start, unit='step', dynamic_ncols=True,
                    disable=not (lead and self.cfg.progress), mininterval=1.0)
