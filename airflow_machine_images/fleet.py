"""Helpers for DAG files that back up a fleet: turn the list operator's output into the insert operator's
``expand_kwargs`` (:func:`backup_kwargs`) and name each image (:func:`backup_image_name`).

The selection itself (which instances a selector picks, what a partial listing means) lives in
:mod:`airflow_machine_images.planning.fleet`.
"""

from __future__ import annotations

from airflow_machine_images.planning.fleet import backup_image_name, backup_kwargs

__all__ = ["backup_image_name", "backup_kwargs"]
