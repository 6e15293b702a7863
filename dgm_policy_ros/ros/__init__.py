# SPDX-License-Identifier: Apache-2.0
"""ROS 2 layer: the policy node, the MuJoCo simulator node, and what they share.

rclpy and the message packages are imported only here (and only when a node starts), so the
rest of the project works on machines without ROS 2.
"""


def spin_until_shutdown(node, on_start=None) -> None:
    """Spin ``node`` until Ctrl-C or an external shutdown, then tear down cleanly.

    The ``main()`` of every node of this package: ``on_start`` runs before spinning (e.g. the
    policy node's autostart transitions).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if on_start is not None:
            on_start()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT/SIGTERM shut the context down from rclpy's signal handler; the executor may
        # then fail building its next wait set (RCLError: context not valid) rather than
        # raise ExternalShutdownException. That is a requested shutdown, not a crash.
        if node.context.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def run_node(make_node, on_start=None) -> None:
    """A node process's ``main()``: build the node (a bad parameter, bundle or file is one
    line on stderr and exit status 2, not a traceback), then :func:`spin_until_shutdown`."""
    import sys

    import rclpy

    from dgm_policy_ros.errors import DgmError

    rclpy.init()
    try:
        node = make_node()
    except DgmError as exc:
        print(f'{sys.argv[0]}: error: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        raise SystemExit(2) from None
    spin_until_shutdown(node, on_start(node) if on_start else None)
