# SPDX-License-Identifier: Apache-2.0
"""Diffusion building blocks, separate from any denoiser network: noise schedules, the DDPM
training objective and DDIM / few-step samplers whose loops export to ONNX."""
from dgm_policy_ros.diffusion.schedule import PREDICTIONS, SCHEDULES, DDIMSampler, NoiseSchedule

__all__ = ['PREDICTIONS', 'SCHEDULES', 'DDIMSampler', 'NoiseSchedule']
