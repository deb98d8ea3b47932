"""The boot check by ``dag.test()`` against the emulator's serial consoles, over real HTTP.

A boot line passes; a kernel panic fails at once naming the console's last lines; a console that never
shows a boot line fails at the deadline; every read starts where the previous answer's ``next`` ended
(the emulator's request log shows the ``start`` of each); a templated bad pattern fails before any request.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pytest

from airflow_machine_images.emulator import Fault
from tests.integration.conftest import PROJECT, run_dag, task_states, xcom_result

if TYPE_CHECKING:
    from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ZONE = "us-central1-a"
READ = "instances.getSerialPortOutput"


def serial_starts(emulator: ComputeEngineEmulator) -> list[int]:
    return [int(r.query["start"]) for r in emulator.requests if r.action == READ]


def output_of(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


@pytest.mark.parametrize("dag_id", ["ami_test_boot", "ami_test_boot_deferrable"])
def test_an_instance_that_boots_passes_with_the_line_that_matched(
    gcp_connection: ComputeEngineEmulator, dag_id: str
) -> None:
    gcp_connection.configure_serial_console(boot_seconds=0)
    dag_run = run_dag(dag_id)
    assert task_states(dag_run) == {"verify_boot": "success"}
    result = xcom_result(dag_run, "verify_boot")
    assert result["booted"] is True and result["instance"] == "web-1" and result["port"] == 1
    assert "Reached target multi-user.target - Multi-User System." in result["matched_line"]
    assert "\x1b" not in result["matched_line"]  # systemd's colour escapes are not carried along
    assert result["console_bytes_read"] > 0 and result["console_bytes_skipped"] == 0


@pytest.mark.parametrize("dag_id", ["ami_test_boot", "ami_test_boot_deferrable"])
def test_a_kernel_panic_fails_at_once_quoting_the_last_console_lines(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    gcp_connection.set_boot_log(f"{ZONE}/web-1", "panic", boot_seconds=0)
    dag_run = run_dag(dag_id)
    assert task_states(dag_run) == {"verify_boot": "failed"}
    output = output_of(capfd)
    assert "Boot of instance web-1 in us-central1-a" in output
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)" in output
    assert 'VFS: Cannot open root device "sda1"' in output  # a line before the panic, from the tail
    assert "\x07" not in output and "\x1b[0;32m" not in output  # console control characters are stripped
    assert len(serial_starts(gcp_connection)) == 1  # the panic decided it: no read after it, no retry


def test_a_console_that_never_shows_a_boot_line_fails_at_the_deadline(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    gcp_connection.set_boot_log(f"{ZONE}/web-1", "hang", boot_seconds=0)
    dag_run = run_dag("ami_test_boot_short_timeout")
    assert task_states(dag_run) == {"verify_boot": "failed"}
    output = output_of(capfd)
    assert "no boot line by the task's deadline" in output
    assert "A start job is running for /dev/disk/by-uuid/3f1c" in output


def test_every_read_starts_at_the_previous_answers_next(gcp_connection: ComputeEngineEmulator) -> None:
    # Eight lines of exactly 64 bytes each (62 characters and CR LF), written over 6 s, and answers cut at
    # 64 bytes: every answer carries 0 or 64 bytes, so every start is the last one or 64 more.
    lines = [f"[{i:8d}] boot step {i}".ljust(62, ".") for i in range(7)]
    lines.append("Reached target Multi-User System".ljust(62, "."))
    gcp_connection.configure_serial_console(answer_bytes=64)
    gcp_connection.set_boot_log(f"{ZONE}/web-1", lines=lines, boot_seconds=6)
    dag_run = run_dag("ami_test_boot_deferrable")
    assert task_states(dag_run) == {"verify_boot": "success"}
    starts = serial_starts(gcp_connection)
    assert starts[0] == 0
    # a re-read (a start going back, or landing inside bytes already served) cannot pass this
    assert all(later - earlier in (0, 64) for earlier, later in itertools.pairwise(starts))
    assert starts[-1] == 7 * 64  # the eighth line, read once
    assert xcom_result(dag_run, "verify_boot")["console_bytes_read"] == 8 * 64


def test_the_check_by_id_reads_that_instance_and_not_a_namesake(gcp_connection: ComputeEngineEmulator) -> None:
    gcp_connection.configure_serial_console(boot_seconds=0)
    (web_1,) = [i for i in gcp_connection.instances(PROJECT) if i["name"] == "web-1"]
    dag_run = run_dag("ami_test_boot_by_id", run_conf={"instance_id": web_1["id"]})
    assert task_states(dag_run) == {"verify_boot": "success"}
    paths = [r.path for r in gcp_connection.requests if r.action == READ]
    assert paths and all(path.endswith(f"/instances/{web_1['id']}/serialPort") for path in paths)


@pytest.mark.parametrize(
    ("conf", "parameter"),
    [
        ({"pattern": "Reached target (Multi-User"}, "boot_pattern"),
        ({"pattern": "login:|"}, "boot_pattern"),  # matches an empty line: would pass a silent console
        ({"zone": "Us_Central1"}, "zone"),
        ({"instance_id": "web-1"}, "instance_id"),
    ],
)
def test_bad_templated_input_fails_before_any_request_naming_the_parameter(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str], conf: dict[str, str], parameter: str
) -> None:
    dag_id = "ami_test_boot_by_id" if "instance_id" in conf else "ami_test_boot_deferrable"
    dag_run = run_dag(dag_id, run_conf=conf)
    assert task_states(dag_run) == {"verify_boot": "failed"}
    assert gcp_connection.requests == []
    assert re.search(rf"Invalid {parameter}: ", output_of(capfd))


@pytest.mark.parametrize("dag_id", ["ami_test_boot", "ami_test_boot_deferrable"])
def test_transient_faults_of_the_console_reads_are_retried_and_nothing_is_read_twice(
    gcp_connection: ComputeEngineEmulator, dag_id: str
) -> None:
    gcp_connection.configure_serial_console(boot_seconds=0, answer_bytes=64)
    gcp_connection.inject(Fault(kind="status", status=503, action=READ, times=2))
    dag_run = run_dag(dag_id)
    assert task_states(dag_run) == {"verify_boot": "success"}
    answered = [int(r.query["start"]) for r in gcp_connection.requests if r.action == READ and r.status == 200]
    refused = [int(r.query["start"]) for r in gcp_connection.requests if r.action == READ and r.status == 503]
    assert refused == [0, 0]  # the first read, refused twice, retried by the hook with the same start
    assert answered == [64 * i for i in range(len(answered))]  # then each answered read 64 bytes further


@pytest.mark.parametrize("dag_id", ["ami_test_restore_verify_boot", "ami_test_restore_verify_boot_deferrable"])
def test_the_restore_operator_verifies_the_boot_of_the_instance_it_made(
    gcp_connection: ComputeEngineEmulator, dag_id: str
) -> None:
    gcp_connection.add_machine_image("img-a", source_instance=f"{ZONE}/web-1")
    gcp_connection.configure_serial_console(boot_seconds=0)
    dag_run = run_dag(dag_id)
    assert task_states(dag_run) == {"restore": "success"}
    result = xcom_result(dag_run, "restore")
    assert result["status"] == "RUNNING" and result["boot"]["booted"] is True
    assert result["boot"]["instance"] == str(result["id"])  # the instance this restore made, by id
    paths = [r.path for r in gcp_connection.requests if r.action == READ]
    assert paths and all(path.endswith(f"/instances/{result['id']}/serialPort") for path in paths)


@pytest.mark.parametrize("dag_id", ["ami_test_restore_verify_boot", "ami_test_restore_verify_boot_deferrable"])
def test_a_restore_that_panics_fails_its_boot_check_and_a_bad_pattern_restores_nothing(
    gcp_connection: ComputeEngineEmulator, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    gcp_connection.add_machine_image("img-a", source_instance=f"{ZONE}/web-1")
    gcp_connection.set_boot_log(f"{ZONE}/restored-1", "panic", boot_seconds=0)
    dag_run = run_dag(dag_id)
    assert task_states(dag_run) == {"restore": "failed"}
    assert "Kernel panic - not syncing" in output_of(capfd)
    gcp_connection.clear_requests()
    dag_run = run_dag(dag_id, run_conf={"pattern": "(unclosed"})
    assert task_states(dag_run) == {"restore": "failed"}
    assert "Invalid boot_pattern" in output_of(capfd)
    assert [r.action for r in gcp_connection.requests] == []  # checked before the insert: no VM made
