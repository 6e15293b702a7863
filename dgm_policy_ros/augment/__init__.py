# SPDX-License-Identifier: Apache-2.0
"""Generative data augmentation: model rollouts (MOPO) and synthetic transitions (SynthER),
saved as transition files that ``dgm train --extra-transitions`` mixes into training."""
