# SPDX-License-Identifier: Apache-2.0
"""Callbacks that cannot end a node.

rclpy's executor re-raises an exception from any subscription, timer or service callback and
the node's process exits. Every callback of this package's nodes goes through
:func:`guarded`: an exception is logged (throttled), counted and handed to the node's
``on_error`` (the policy node publishes its fault action and says why on ``/diagnostics``),
and the node keeps running. A callback that fails because the context is going away (a timer
firing during SIGINT/SIGTERM shutdown) is silent: that is a clean exit, not a fault.
"""
from __future__ import annotations

import functools
import traceback
from typing import Any, Callable


def guarded(node, name: str, callback: Callable[..., Any],
            on_error: Callable[[str, BaseException], None] | None = None) -> Callable[..., Any]:
    """``callback`` wrapped so that no ``Exception`` escapes to the executor."""

    @functools.wraps(callback)
    def run(*args: Any) -> Any:
        try:
            return callback(*args)
        except Exception as exc:  # noqa: BLE001 - the point: nothing ends the node
            if not node.context.ok():
                return None  # shutting down
            counters = getattr(node, 'counters', None)
            if counters is not None:
                counters['callback_errors'] += 1
            node.get_logger().error(
                f'{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}',
                throttle_duration_sec=1.0)
            if on_error is not None:
                try:
                    on_error(name, exc)
                except Exception as inner:  # noqa: BLE001
                    if node.context.ok():
                        node.get_logger().error(f'{name}: handling {type(exc).__name__} '
                                                f'failed too: {inner}',
                                                throttle_duration_sec=1.0)
            return None

    return run


def guarded_service(node, name: str, callback: Callable[[Any, Any], Any]) -> Callable:
    """A service callback that answers ``success=False`` with the reason instead of raising."""

    @functools.wraps(callback)
    def run(request: Any, response: Any) -> Any:
        try:
            return callback(request, response)
        except Exception as exc:  # noqa: BLE001
            if node.context.ok():
                node.get_logger().error(f'{name}: {type(exc).__name__}: {exc}')
            if hasattr(response, 'success'):
                response.success = False
            if hasattr(response, 'message'):
                response.message = f'{type(exc).__name__}: {exc}'
            return response

    return run
