# SPDX-License-Identifier: Apache-2.0
"""The contract every policy family implements, so one trainer, one exporter and one runner
serve them all.

- a typed config (:class:`AlgoConfig` subclass) that round-trips to YAML;
- ``update(batch) -> {loss name: value}``: one gradient step;
- ``act(obs, *images, *history, *noise) -> actions (B, H, A)``: the inference graph, pure
  tensor ops, every source of randomness an explicit input; H is the action-chunk length (1 for
  single actions). A policy that ``sees_images`` and was trained on a dataset with cameras
  takes each camera's uint8 frames (B, H, W, C) after the state (``observe`` turns both into
  one vector). Sequence policies declare a :class:`HistorySpec`: their ``obs`` is then a window
  (B, K, obs_dim) and the other history fields (past actions, returns-to-go, ...) follow it;
- ``predict(inputs) -> numpy (B, H, A)``: ``act`` with noise drawn as the runner draws it;
- ``export_module()``: a tensor-only ``nn.Module`` around ``act`` for ONNX export, with the
  observation normalization and action scaling baked in.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Optional, Sequence

import numpy as np
import torch
from torch import nn

from dgm_policy_ros.config import Config, ConfigError
from dgm_policy_ros.data.episodes import Episode
from dgm_policy_ros.data.normalization import NormalizationStats
from dgm_policy_ros.data.samplers import ChunkSampler, SequenceSampler, TransitionSampler
from dgm_policy_ros.data.transitions import IMAGE_PREFIX
from dgm_policy_ros.networks import ActionScaler, ObsNormalizer
from dgm_policy_ros.networks.image_encoder import IMAGE_ENCODERS, ObservationEncoder
from dgm_policy_ros.runtime.bundle import NoiseInput
from dgm_policy_ros.runtime.history import HistorySpec
from dgm_policy_ros.training.device import module_device


@dataclasses.dataclass
class AlgoConfig(Config):
    """Hyper-parameters shared by every algorithm; subclasses add their own."""

    batch_size: int = 256  # transitions (or windows, chunks) per gradient step
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])  # layer widths
    lr: float = 3e-4  # Adam learning rate

    # Settings added after runs were saved without them, with the value those runs were
    # trained with (which may differ from today's default): a saved config that lacks a key
    # gets it from here (``from_saved``). Runs now save their whole resolved config, so only
    # settings older runs predate belong here.
    legacy: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_saved(cls, data: dict[str, Any]):
        """The config a run saved as ``data`` was trained with (``legacy`` filling the keys
        it predates), not what today's defaults would make of it."""
        return cls.from_dict({**cls.legacy, **data})

    def validate(self) -> None:
        name = type(self).__name__
        if self.batch_size < 1:
            raise ConfigError(f'{name}.batch_size must be >= 1, got {self.batch_size}')
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f'{name}.hidden must be a non-empty list of positive widths, '
                              f'got {self.hidden}')
        if not self.lr > 0:
            raise ConfigError(f'{name}.lr must be > 0, got {self.lr}')


@dataclasses.dataclass
class VisionSettings(AlgoConfig):
    """How a policy that sees images encodes them (``networks/image_encoder.py``)."""

    use_images: bool = True  # see the dataset's cameras, when it has them; false: state only
    image_encoder: str = 'conv'  # 'conv' (small, for CPU training) or 'resnet18' (GroupNorm)
    image_features: int = 64  # features per camera
    crop: float = 0.9  # crop side as a fraction of the image: random in training, centred after
    # The dataset's state elements the policy sees beside the images (None: the dataset's
    # proprioception, e.g. MetaWorld's hand position and gripper, else the whole state).
    state_indices: Optional[list[int]] = None

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ConfigError(f'{name}.image_encoder must be one of {IMAGE_ENCODERS}')
        if self.image_features < 1 or not 0.5 <= self.crop <= 1.0:
            raise ConfigError(f'{name}: need image_features >= 1 and 0.5 <= crop <= 1')
        if self.state_indices is not None and (not self.state_indices or
                                               min(self.state_indices) < 0):
            raise ConfigError(f'{name}.state_indices must be non-negative indices')


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data: sizes, normalization, action bounds, and
    for a policy that sees images, its cameras and which state elements it sees."""

    obs_dim: int
    act_dim: int
    stats: NormalizationStats
    act_low: np.ndarray
    act_high: np.ndarray
    return_max: float = 0.0  # best episode return in the training data (return conditioning)
    image_shapes: dict = dataclasses.field(default_factory=dict)  # camera: (H, W, C)
    state_indices: Optional[tuple] = None  # the dataset state's elements in obs (None: all)
    cameras: tuple = ()  # the camera views the dataset was rendered with (sim.cameras)


@dataclasses.dataclass
class ChunkConfig(AlgoConfig):
    """Hyper-parameters of policies that predict H-step action chunks."""

    horizon: int = 4  # actions per chunk (H)
    n_action_steps: int = 2  # actions executed per inference
    # Chunks that run past an episode's end hold its last action repeated; true trains on those
    # entries too (Diffusion Policy's and LeRobot's default), false leaves them out of the loss.
    learn_padding: bool = False

    def validate(self) -> None:
        super().validate()
        if self.horizon < 1 or not 1 <= self.n_action_steps <= self.horizon:
            raise ConfigError(f'{type(self).__name__}: need horizon >= 1 and '
                              '1 <= n_action_steps <= horizon')


# The noise-input description is the runtime's (torch-free): one definition for both.
NoiseSpec = NoiseInput


FAMILIES = ('baseline', 'vae', 'gan', 'flow', 'transformer', 'diffusion', 'ensemble')
KINDS = ('policy', 'world_model')
SAMPLER_KINDS = ('transitions', 'chunks', 'sequences')
# Graphs a bundle may carry besides the policy, each a capability an algorithm declares (and
# implements: ``log_prob(obs, action)``; ``step_module()`` and ``decode_module()``).
EXTRA_GRAPHS = ('log_prob', 'denoise_step')


class Algorithm(nn.Module, abc.ABC):
    """Base class of every policy and world model: the one contract every family keeps.

    A concrete subclass sets ``name``, ``family`` and ``config_class`` (checked when the class
    is made) and implements ``act``, ``update`` and ``optimizers``; what else it can do is
    declared, not probed: ``kind`` and ``extra_graphs``."""

    name: ClassVar[str]
    family: ClassVar[str]  # one of FAMILIES
    kind: ClassVar[str] = 'policy'  # one of KINDS
    extra_graphs: ClassVar[frozenset[str]] = frozenset()  # from EXTRA_GRAPHS
    config_class: ClassVar[type[AlgoConfig]] = AlgoConfig
    # Takes camera frames beside the state (its config is then a VisionSettings, and its
    # optimizer covers vision_parameters()).
    sees_images: ClassVar[bool] = False
    sampler_kind: ClassVar[str] = 'transitions'  # one of SAMPLER_KINDS
    ddp_modules: ClassVar[tuple[str, ...]] = ()  # sub-modules wrapped by DDP under torchrun
    monitored_loss: ClassVar[str] = 'loss'  # the loss that must fall (tests, benchmarks)
    # Picks one of several candidate actions by a score: rounding may flip a near tie, which
    # the export's parity check allows on a few rows (export/onnx_export.py).
    chooses_among_candidates: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if 'name' not in cls.__dict__:
            return  # an intermediate base (ChunkedAlgorithm, WorldModel, ...)
        problems = []
        if not isinstance(cls.name, str) or not cls.name:
            problems.append('name must be a non-empty string')
        if getattr(cls, 'family', None) not in FAMILIES:
            problems.append(f'family must be one of {FAMILIES}')
        if cls.kind not in KINDS:
            problems.append(f'kind must be one of {KINDS}')
        if cls.sampler_kind not in SAMPLER_KINDS:
            problems.append(f'sampler_kind must be one of {SAMPLER_KINDS}')
        if not (isinstance(cls.config_class, type) and issubclass(cls.config_class, AlgoConfig)
                and dataclasses.is_dataclass(cls.config_class)):
            problems.append('config_class must be an AlgoConfig dataclass')
        if cls.sees_images and not issubclass(cls.config_class, VisionSettings):
            problems.append('sees_images needs a config_class deriving from VisionSettings')
        unknown = set(cls.extra_graphs) - set(EXTRA_GRAPHS)
        if unknown:
            problems.append(f'extra_graphs {sorted(unknown)} are not among {EXTRA_GRAPHS}')
        needs = {'log_prob': ('log_prob',), 'denoise_step': ('step_module', 'decode_module')}
        for graph in cls.extra_graphs & set(needs):
            problems += [f'declares {graph} but has no {method}()' for method in needs[graph]
                         if not callable(getattr(cls, method, None))]
        if problems:
            raise TypeError(f'{cls.__qualname__}: ' + '; '.join(problems))

    def __init__(self, cfg: AlgoConfig, spec: DataSpec) -> None:
        super().__init__()
        if not isinstance(cfg, self.config_class):
            raise ConfigError(f'{self.name} needs a {self.config_class.__name__}, '
                              f'got {type(cfg).__name__}')
        self.cfg, self.spec = cfg, spec
        self.obs_norm = ObsNormalizer(spec.stats.obs_mean, spec.stats.obs_std)
        self.act_scale = ActionScaler(spec.act_low, spec.act_high)
        self._ddp: dict[str, nn.Module] = {}
        self.vision: ObservationEncoder | None = None
        if spec.image_shapes:
            if not self.sees_images:
                raise ConfigError(f'{self.name} does not take images; train it on the state '
                                  '(the trainer drops the cameras of a dataset for it)')
            self.vision = ObservationEncoder(spec.image_shapes, cfg.image_encoder,
                                             cfg.image_features, cfg.crop)

    # -- observations -------------------------------------------------------------------
    @property
    def observed_dim(self) -> int:
        """Width of ``observe``'s output: the state, and each camera's features."""
        return self.spec.obs_dim + (self.vision.features if self.vision else 0)

    def image_inputs(self) -> list[str]:
        """The graph's camera inputs, ``images/<camera>``, uint8 (B, H, W, C) each."""
        return [IMAGE_PREFIX + camera for camera in self.spec.image_shapes]

    def observe(self, obs: torch.Tensor, images: Sequence[torch.Tensor] = (),
                vision: nn.Module | None = None) -> torch.Tensor:
        """The normalized state, followed by each camera's features when the policy sees
        images (through ``vision``, default the trained encoders); leading window dimensions
        are kept."""
        state = self.obs_norm(obs)
        if self.vision is None:
            return state
        return (vision or self.vision)(state, list(images))

    def batch_images(self, batch: dict[str, torch.Tensor], last: bool = False
                     ) -> list[torch.Tensor]:
        """A training batch's frames per camera (``last``: of its window's newest step)."""
        return [batch[name][:, -1] if last else batch[name] for name in self.image_inputs()]

    def split_images(self, inputs: Sequence[torch.Tensor]
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``act``'s inputs after ``obs``: (the camera frames, the rest)."""
        n = len(self.image_inputs())
        return list(inputs[:n]), list(inputs[n:])

    def vision_parameters(self) -> list[nn.Parameter]:
        """The image encoders' weights, for the optimizer that trains the policy."""
        return list(self.vision.parameters()) if self.vision else []

    @property
    def device(self) -> torch.device:
        """Where the weights live (the trainer moves them to its ``device``)."""
        return module_device(self)

    # -- shape of the policy's output -------------------------------------------------
    @property
    def chunk_size(self) -> int:
        """Actions per inference (H); 1 for single-step policies."""
        return 1

    @property
    def n_action_steps(self) -> int:
        """How many actions of each chunk are executed before the next inference."""
        return 1

    def noise_specs(self) -> list[NoiseSpec]:
        return []

    def history_spec(self) -> HistorySpec | None:
        """The observation window the policy consumes; None: the current observation only."""
        return None

    def input_names(self) -> list[str]:
        """The graph's inputs before the noise: ``obs`` and any history fields."""
        history = self.history_spec()
        return ['obs', *self.image_inputs(), *(history.fields if history else ())]

    # -- to implement ---------------------------------------------------------------
    @abc.abstractmethod
    def act(self, obs: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        """Actions (B, H, A) in the robot's units from raw inputs and explicit noise."""

    @abc.abstractmethod
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on a batch; the losses, as floats."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer by name (checkpoints save and restore them)."""

    # -- provided -------------------------------------------------------------------
    def make_sampler(self, episodes: Sequence[Episode], seed: int):
        if self.sampler_kind == 'transitions':
            return TransitionSampler(episodes, self.cfg.batch_size, seed)
        if self.sampler_kind == 'chunks':
            return ChunkSampler(episodes, self.chunk_size, self.cfg.batch_size,
                                getattr(self.cfg, 'n_obs_steps', 1), seed)
        if self.sampler_kind == 'sequences':
            return SequenceSampler(episodes, getattr(self.cfg, 'context', 20),
                                   self.cfg.batch_size, seed)
        raise ConfigError(f'unknown sampler kind {self.sampler_kind!r}')

    def draw_noise(self, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [spec.draw(batch, rng) for spec in self.noise_specs()]

    @torch.no_grad()
    def predict(self, inputs: np.ndarray | dict[str, np.ndarray],
                noise: Sequence[np.ndarray] | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions (B, H, A) in the robot's units for raw observations (B, obs_dim), or, for a
        sequence policy, a batch of history windows keyed by ``input_names()``."""
        if isinstance(inputs, dict):
            images = set(self.image_inputs())
            arrays = [np.asarray(inputs[name], dtype=np.uint8 if name in images else np.float32)
                      for name in self.input_names()]
        else:
            obs = np.asarray(inputs, dtype=np.float32)
            arrays = [obs[None] if obs.ndim == 1 else obs]
        if noise is None:
            noise = self.draw_noise(arrays[0].shape[0], rng or np.random.default_rng())
        was_training = self.training
        self.eval()
        try:
            out = self.act(*[to_tensor(a, self.device) for a in [*arrays, *noise]])
        finally:
            self.train(was_training)
        return out.cpu().numpy()

    def export_module(self) -> nn.Module:
        return ExportModule(self)

    def wrapped(self, name: str) -> nn.Module:
        """The sub-module to call in ``update``: its DDP wrapper under torchrun."""
        return self._ddp.get(name) or getattr(self, name)

    def enable_ddp(self) -> None:
        from torch.nn.parallel import DistributedDataParallel

        if not self.ddp_modules or self.vision is not None:
            raise ConfigError(f'{self.name} does not support multi-process training yet'
                              + (' with cameras' if self.vision is not None else ''))
        for name in self.ddp_modules:
            # Kept outside the module registry so state_dict keys stay the same.
            module = getattr(self, name)
            device = module_device(module)
            self._ddp[name] = DistributedDataParallel(
                module, device_ids=[device] if device.type == 'cuda' else None)

    def unit_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Dataset actions mapped to [-1, 1] (clamped: data may touch the bounds)."""
        return self.act_scale.to_unit(actions).clamp(-1.0, 1.0)


class ChunkedAlgorithm(Algorithm):
    """A policy over H-step action chunks (config: a :class:`ChunkConfig`)."""

    sampler_kind = 'chunks'

    @property
    def chunk_size(self) -> int:
        return self.cfg.horizon

    @property
    def n_action_steps(self) -> int:
        return self.cfg.n_action_steps

    def chunk_targets(self, batch: dict[str, torch.Tensor], observe: bool = True
                      ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(observed current observation, flat unit chunk (B, H*A), its padding mask);
        ``observe=False`` leaves the observation out (None), for a policy that conditions on
        it otherwise: with cameras, encoding it would cost a pass of the image encoder."""
        obs = self.observe(batch['observations'][:, -1], self.batch_images(batch, last=True)) \
            if observe else None
        chunk = self.unit_actions(batch['actions'])  # (B, H, A)
        b, h, a = chunk.shape
        mask = torch.ones_like(chunk) if self.cfg.learn_padding else \
            batch['action_mask'].unsqueeze(-1).expand(b, h, a)
        return obs, chunk.reshape(b, h * a), mask.reshape(b, h * a)


class ExportModule(nn.Module):
    """``forward(obs, *noise) -> actions (B, H, A)``: what goes into the ONNX graph."""

    def __init__(self, algorithm: Algorithm) -> None:
        super().__init__()
        self.algorithm = algorithm

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.algorithm.act(*inputs)


def to_tensor(array: np.ndarray, device: torch.device | str = 'cpu') -> torch.Tensor:
    """A numpy array as a tensor on ``device`` (no copy on the CPU)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def to_tensors(batch: dict[str, np.ndarray], device: torch.device | str = 'cpu'
               ) -> dict[str, torch.Tensor]:
    return {k: to_tensor(v, device) for k, v in batch.items()}
