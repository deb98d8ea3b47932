"""Machine-image assets: per-instance assets of images kept in a backup project, and outlets that name
only the image a task makes (issue 24 item 5)."""

from __future__ import annotations

from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from airflow.providers.common.compat.sdk import AssetAlias

from airflow_machine_images.assets import (
    asset_images,
    check_outlets,
    machine_image_asset,
    record_outlet_events,
    sanitize_uri,
)
from airflow_machine_images.exceptions import MachineImageValidationError
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.validation import parse_source_instance

WEB1 = "projects/work/zones/us-central1-a/instances/web-1"


def test_a_per_instance_asset_takes_a_backup_project() -> None:
    asset = machine_image_asset("backups", WEB1)
    assert asset.uri == f"gce-machine-image://backups/{WEB1}"
    assert sanitize_uri(urlsplit(asset.uri)) is not None
    project, source = asset_images(asset.uri)  # type: ignore[misc]
    assert project == "backups" and source is not None and source.partial_url == WEB1
    # An instance of the images' own project keeps the URI of earlier releases.
    assert machine_image_asset("work", WEB1).uri == "gce-machine-image://work/zones/us-central1-a/instances/web-1"
    assert machine_image_asset("work", "us-central1-a/web-1").uri == machine_image_asset("work", WEB1).uri
    assert asset_images(machine_image_asset("work").uri) == ("work", None)
    assert asset_images("s3://bucket/key") is None


@pytest.mark.parametrize(
    "uri",
    [
        "gce-machine-image://backups/projects/work/zones/us-central1/instances/web-1",
        "gce-machine-image://backups/projects/Work/zones/us-central1-a/instances/web-1",
        "gce-machine-image://backups/projects/work/regions/us-central1/instances/web-1",
    ],
)
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid gce-machine-image URI|URI path must be"):
        sanitize_uri(urlsplit(uri))


@pytest.mark.parametrize(
    ("outlets", "refused"),
    [
        ([machine_image_asset("backups", WEB1)], None),
        ([machine_image_asset("backups")], None),
        ([AssetAlias("nightly")], None),
        ([machine_image_asset("backups"), machine_image_asset("backups", WEB1.replace("web-1", "web-2"))], 1),
        ([machine_image_asset("work", WEB1)], 0),  # the images are made in backups, not in work
        ([machine_image_asset("elsewhere")], 0),
    ],
)
def test_an_outlet_naming_another_instance_or_project_is_refused(outlets: list[Any], refused: int | None) -> None:
    source = parse_source_instance(WEB1, None)
    if refused is None:
        check_outlets(outlets, "backups", source)
        return
    with pytest.raises(MachineImageValidationError, match="use an AssetAlias outlet") as caught:
        check_outlets(outlets, "backups", source)
    assert caught.value.parameter == f"outlets[{refused}]"


def test_the_insert_operator_refuses_another_instance_s_asset_at_parse_time() -> None:
    with pytest.raises(MachineImageValidationError) as caught:
        ComputeEngineInsertMachineImageOperator(
            task_id="t",
            name="img-a",
            project_id="backups",
            source_instance=WEB1.replace("web-1", "web-2"),
            outlets=[machine_image_asset("backups", WEB1)],
        )
    assert caught.value.parameter == "outlets[0]"


def _outlet_key(outlet: Any) -> tuple[str, str | None, str | None]:
    return type(outlet).__name__, getattr(outlet, "name", None), getattr(outlet, "uri", None)


def test_an_alias_gets_one_event_on_the_asset_of_the_instance_imaged() -> None:
    events: dict[Any, Any] = {}
    alias, project_asset = AssetAlias("nightly"), machine_image_asset("backups")
    accessor = mock.MagicMock()
    # Keyed by what names the outlet: an Asset of Airflow 3.0 and 3.1 is not hashable (its __hash__ hashes a dict).
    accessor.__getitem__.side_effect = lambda key: events.setdefault(_outlet_key(key), mock.MagicMock(extra={}))
    summary = {"name": "web-1-x", "project_id": "backups", "source_instance": f"https://h/compute/v1/{WEB1}"}
    record_outlet_events({"outlet_events": accessor}, [alias, project_asset], summary)  # type: ignore[typeddict-item]
    (call,) = events[_outlet_key(alias)].add.call_args_list
    assert call.args[0].uri == f"gce-machine-image://backups/{WEB1}"
    assert call.kwargs["extra"]["name"] == "web-1-x"
    assert events[_outlet_key(project_asset)].extra["name"] == "web-1-x"
