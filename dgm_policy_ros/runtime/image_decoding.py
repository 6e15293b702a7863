# SPDX-License-Identifier: Apache-2.0
"""Camera messages to the uint8 (H, W, C) frames a bundle takes, torch-free.

``sensor_msgs/Image`` is read in place (a numpy view of the message's buffer, rows cut to their
``step``), ``sensor_msgs/CompressedImage`` (JPEG, PNG) is decoded with Pillow (a JPEG at the
smallest of its DCT scales, 1/1 to 1/8, still at least the bundle's size); either is then
turned to the bundle's channel order and size (Pillow's resize where the camera's size differs).
Every malformed message raises :class:`ObservationError` with a short reason: ``wrong
encoding``, ``wrong size``, ``truncated``, ``undecodable``.
"""
from __future__ import annotations

import io

import numpy as np

from dgm_policy_ros.runtime.runner import ObservationError

# Raw encodings read here: channels, and whether the channels are in BGR(A) order.
RAW_ENCODINGS = {'rgb8': (3, False), 'bgr8': (3, True), 'rgba8': (4, False),
                 'bgra8': (4, True), 'mono8': (1, False)}
COMPRESSED_FORMATS = ('jpeg', 'png')


def decode_image(msg, shape: tuple[int, int, int], topic: str) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a uint8 frame of ``shape`` (H, W, C)."""
    encoding = str(msg.encoding).lower()
    if encoding not in RAW_ENCODINGS:
        raise ObservationError('wrong encoding', f'{topic}: encoding {msg.encoding!r} is not '
                               f'one of {sorted(RAW_ENCODINGS)}')
    channels, bgr = RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 1 or width < 1 or step < width * channels:
        raise ObservationError('wrong size', f'{topic}: {width}x{height} {encoding} with row '
                               f'step {step}')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise ObservationError('truncated', f'{topic}: {data.size} bytes for {height} rows '
                               f'of {step}')
    rows = data[:step * height].reshape(height, step)[:, :width * channels]
    frame = rows.reshape(height, width, channels)
    if bgr:
        frame = frame[..., [2, 1, 0, 3][:channels]]
    return fit(frame, shape, topic)


def decode_compressed(msg, shape: tuple[int, int, int], topic: str) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as a uint8 frame of ``shape``."""
    from PIL import Image, UnidentifiedImageError

    declared = str(msg.format).lower()
    if not any(f in declared for f in COMPRESSED_FORMATS):
        raise ObservationError('wrong encoding', f'{topic}: format {msg.format!r} is not '
                               f'one of {COMPRESSED_FORMATS}')
    try:
        with Image.open(io.BytesIO(memoryview(msg.data))) as image:
            if image.format is None or image.format.lower() not in ('jpeg', 'png'):
                raise ObservationError('wrong encoding', f'{topic}: the data is '
                                       f'{image.format}, not JPEG or PNG')
            mode = 'L' if shape[2] == 1 else 'RGB'
            if image.format.lower() == 'jpeg':  # decoded at the smallest DCT scale >= shape
                image.draft(mode, (shape[1], shape[0]))
            image.load()
            frame = np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ObservationError('undecodable', f'{topic}: {type(exc).__name__}: {exc}') from exc
    return fit(frame.reshape(frame.shape[0], frame.shape[1], -1), shape, topic)


def fit(frame: np.ndarray, shape: tuple[int, int, int], topic: str) -> np.ndarray:
    """``frame`` in the bundle's channels and size: alpha dropped, resized where needed."""
    height, width, channels = shape
    if frame.shape[2] == 4:
        frame = frame[..., :3]
    if frame.shape[2] != channels:
        raise ObservationError('wrong encoding', f'{topic}: {frame.shape[2]} channels, the '
                               f'bundle takes {channels}')
    if frame.shape[:2] != (height, width):
        from PIL import Image

        image = Image.fromarray(frame[..., 0] if channels == 1 else frame)
        frame = np.asarray(image.resize((width, height), Image.BILINEAR)).reshape(shape)
    return np.ascontiguousarray(frame)
