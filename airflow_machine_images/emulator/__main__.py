"""Command line: ``python -m airflow_machine_images.emulator --port 8085 --instance us-central1-a/web-1:team=web``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_machine_images.emulator.core import ComputeEngineEmulator, is_loopback
from airflow_machine_images.emulator.server import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from airflow_machine_images.emulator.recording import RecordedRequest

__all__ = ["instance_argument", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_machine_images.emulator",
        description="Run a local Compute Engine API emulator (machine images, operations, instances).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = a free one; default 0)")
    parser.add_argument("--project", default="demo-project", help="default project (default demo-project)")
    parser.add_argument(
        "--instance",
        action="append",
        default=[],
        metavar="ZONE/NAME[:KEY=VALUE,...]",
        help="a source instance to create, with labels after ':' (repeatable; also projects/P/zones/Z/instances/I"
        "[:KEY=VALUE,...]), e.g. us-central1-a/web-1:backup=nightly,team=web",
    )
    parser.add_argument("--disk-size-gb", type=int, default=10, help="boot disk size of --instance VMs")
    parser.add_argument("--operation-seconds", type=float, default=2.0, help="insert/delete duration")
    parser.add_argument("--wait-deadline", type=float, default=120.0, help="longest operations.wait long-poll")
    parser.add_argument("--early-wait-probability", type=float, default=0.0, help="chance a wait returns early")
    parser.add_argument("--request-id-ttl", type=float, default=None, help="seconds requestIds are remembered")
    parser.add_argument(
        "--rate-quota", type=int, default=None, help="requests per project per minute before 403 rateLimitExceeded"
    )
    parser.add_argument(
        "--rate-quota-window", type=float, default=60.0, help="seconds the rate quota refills after (default 60)"
    )
    parser.add_argument(
        "--concurrent-operations-limit",
        type=int,
        default=None,
        help="unfinished operations per project before 403 CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",
    )
    parser.add_argument(
        "--partial-list-fraction", type=float, default=0.0, help="share of list items left out (default 0)"
    )
    parser.add_argument(
        "--partial-list-warning",
        default="UNREACHABLE",
        help="warning.code of thinned lists: UNREACHABLE, PARTIAL_SUCCESS, LIST_OVERHEAD_QUOTA_EXCEED, or none",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="random fault probability per request")
    parser.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help="seconds the server's clock runs ahead of this machine's"
    )
    parser.add_argument(
        "--source-image-limit-scale",
        type=float,
        default=None,
        help="apply the per-source-instance machine-image limit (1 per 10 min, 6 per 60 min), windows times this",
    )
    parser.add_argument("--self-link-base", default="https://www.googleapis.com", help="where selfLinks point")
    parser.add_argument("--ready-file", type=Path, default=None, help="write the URL here once listening")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address and serve any Host header (default: loopback names and "
        "addresses only, so no web page can reach the emulator by DNS rebinding)",
    )
    parser.add_argument(
        "--boot-log",
        action="append",
        default=[],
        metavar="ZONE/NAME=LOG",
        help="the serial console of an instance (also one still to be restored): linux (every instance's "
        "default), windows, panic (a kernel panic, never booted), hang or silent; repeatable",
    )
    parser.add_argument("--boot-seconds", type=float, default=None, help="over how long a boot log appears (default 1)")
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted, 413 beyond (default {DEFAULT_MAX_BODY_BYTES})",
    )
    return parser


def instance_argument(text: str) -> tuple[str, dict[str, str]]:
    """Split an ``--instance`` argument into the instance and its labels.

    :param text: ``ZONE/NAME``, a path or URL, optionally followed by ``:KEY=VALUE,KEY2=VALUE2``.
    :return: the instance reference and its labels (checked by the emulator as the API checks labels).
    :raises ValueError: a label is not ``KEY=VALUE``.
    """
    reference, colon, tail = text.rpartition(":")
    if not colon or "/" in tail or "=" not in tail:  # no labels (a URL's ':' is followed by a path)
        return text, {}
    labels: dict[str, str] = {}
    for pair in tail.split(","):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"--instance {text!r}: labels must be KEY=VALUE pairs separated by ',', got {pair!r}")
        labels[key] = value
    return reference, labels


def _log_request(record: RecordedRequest) -> None:
    status = "dropped" if record.status is None else str(record.status)
    fault = f" fault={record.fault}" if record.fault else ""
    millis = (record.finished - record.started) * 1000
    sys.stderr.write(f"{record.method} {record.path} -> {status} {record.action}{fault} {millis:.1f}ms\n")
    sys.stderr.flush()


def _emulator(args: argparse.Namespace) -> ComputeEngineEmulator:
    """The emulator the command line asks for, seeded with its instances and random faults.

    :param args: the parsed command line.
    :raises ValueError: an argument the emulator refuses.
    """
    emulator = ComputeEngineEmulator(
        args.host,
        args.port,
        default_project=args.project,
        operation_seconds=args.operation_seconds,
        wait_deadline_seconds=args.wait_deadline,
        early_wait_probability=args.early_wait_probability,
        request_id_ttl_seconds=args.request_id_ttl,
        seed=args.seed,
        self_link_base=args.self_link_base,
        allow_remote=args.allow_remote,
        on_request=None if args.quiet else _log_request,
        max_request_bytes=args.max_request_bytes,
        rate_quota_per_minute=args.rate_quota,
        rate_quota_window_seconds=args.rate_quota_window,
        concurrent_operations_limit=args.concurrent_operations_limit,
        partial_list_fraction=args.partial_list_fraction,
        partial_list_warning=None if args.partial_list_warning == "none" else args.partial_list_warning,
        clock_offset_seconds=args.clock_offset,
        source_image_limit_scale=args.source_image_limit_scale,
    )
    for argument in args.instance:
        instance, labels = instance_argument(argument)
        emulator.add_instance(instance, disk_size_gb=args.disk_size_gb, labels=labels or None)
    if args.boot_seconds is not None:
        emulator.configure_serial_console(boot_seconds=args.boot_seconds)
    for planned in args.boot_log:
        instance, equals, log = planned.rpartition("=")
        if not equals:
            raise ValueError(f"--boot-log must be ZONE/NAME=LOG; got {planned!r}")
        emulator.set_boot_log(instance, log)
    if args.fault_rate > 0:
        emulator.inject_random(rate=args.fault_rate)
    return emulator


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT.

    :param argv: arguments (default ``sys.argv[1:]``).
    :return: the exit status.
    """
    args = _parser().parse_args(argv)
    if not args.allow_remote and not is_loopback(args.host):
        sys.stderr.write(f"Refusing to bind {args.host}: not a loopback address (use --allow-remote)\n")
        return 2
    try:
        emulator = _emulator(args)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        emulator.start()
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    try:
        if args.ready_file is not None:
            temporary = args.ready_file.with_name(args.ready_file.name + ".tmp")
            temporary.write_text(emulator.url + "\n", encoding="utf-8")
            os.replace(temporary, args.ready_file)
        sys.stdout.write(f"Compute Engine emulator listening on {emulator.url}\n")
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
