# SPDX-License-Identifier: Apache-2.0
"""Action chunking at run time: execute the first ``n_action_steps`` of each predicted chunk,
then ask the model again. One implementation for the ROS node, the runner and evaluation."""
from __future__ import annotations

from collections import deque

import numpy as np


class ActionQueue:
    def __init__(self, n_action_steps: int) -> None:
        if n_action_steps < 1:
            raise ValueError(f'n_action_steps must be >= 1, got {n_action_steps}')
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def needs_refill(self) -> bool:
        return not self._queue

    def refill(self, chunk: np.ndarray) -> None:
        """Queue the first ``n_action_steps`` actions of a (H, A) chunk, replacing the rest."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[0] < self.n_action_steps:
            raise ValueError(f'expected a (H >= {self.n_action_steps}, A) chunk, got '
                             f'{chunk.shape}')
        self._queue.clear()
        self._queue.extend(chunk[:self.n_action_steps])

    def pending(self) -> list[np.ndarray]:
        """The queued actions, next first (for publishing a chunk as a trajectory)."""
        return list(self._queue)

    def pop(self) -> np.ndarray:
        return self._queue.popleft()

    def clear(self) -> None:
        self._queue.clear()
