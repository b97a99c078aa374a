"""The camera inventory: the city's or the police's list of camera points, as CSV or
GeoJSON, with the [[cameras]] tables added on top (a table with a file's id replaces
that row). Read at start and again at every reload.

This module only reads the file and maps its columns; every field rule is
config.py's, the same as for a [[cameras]] table. An error names the file, the row
and the field, and never holds a source: sources may carry passwords.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.config import (
    CameraSettings,
    ConfigError,
    InventoryColumns,
    InventorySettings,
    Settings,
    camera_settings,
    mask_count_problem,
)

# 15,000 cameras take about 2 MB as CSV; far more is a wrong file, not a bigger city.
MAX_FILE_BYTES = 64 << 20
DEFAULT_MASKS_COLUMN = InventoryColumns().masks


class InventoryError(ConfigError):
    """The inventory cannot be used as a whole; the message says where and why."""


@dataclass(frozen=True)
class Inventory:
    cameras: tuple[CameraSettings, ...]
    from_file: int  # rows read from [inventory] file
    from_tables: int  # [[cameras]] tables, each adding a camera or replacing a row

    @property
    def districts(self) -> dict[str, str]:
        """Camera id -> district, for police authorizations scoped by district."""
        return {c.id: c.district for c in self.cameras if c.district}

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.cameras)


def read_inventory(settings: Settings) -> Inventory:
    """The cameras: the inventory file's rows, then the [[cameras]] tables over them."""
    inventory = settings.inventory
    rows = _read_file(inventory, settings) if inventory.file else []
    cameras = {camera.id: camera for camera in rows}
    cameras.update((camera.id, camera) for camera in settings.cameras)
    if not cameras:
        raise InventoryError(
            f"{settings.inventory.file}: lists no cameras, and there is no [[cameras]] table"
        )
    return Inventory(tuple(cameras.values()), len(rows), len(settings.cameras))


def _read_file(inventory: InventorySettings, settings: Settings) -> list[CameraSettings]:
    """The file's cameras, by the rules of `settings` ([police_api], [relay] max_masks)."""
    assert inventory.file is not None
    path = inventory.file
    kind = inventory.format
    if kind == "auto":
        extension = os.path.splitext(path)[1].lower()
        kind = {".csv": "csv", ".geojson": "geojson", ".json": "geojson"}.get(extension, "")
        if not kind:
            raise InventoryError(
                f"{path}: cannot tell CSV from GeoJSON by the name; set [inventory] format"
            )
    text = _read_text(path)
    name = os.path.basename(path)
    rows = (_csv_rows if kind == "csv" else _geojson_rows)(text, name, inventory)
    cameras: list[CameraSettings] = []
    first: dict[str, str] = {}
    columns = inventory.columns
    for where, cells in rows:
        fields: dict[str, Any] = {
            key: value for key, value in cells.items() if value != "" and value is not None
        }
        ident = fields.get("id")
        if columns.source:
            if "source" in fields and isinstance(fields["source"], str):
                fields["source"] = inventory.source_prefix + fields["source"]
        elif isinstance(ident, str):
            fields["source"] = inventory.source_prefix + ident
        if isinstance(fields.get("masks"), str):  # a CSV cell, or a GeoJSON string
            fields["masks"] = _json_cell(fields["masks"], where, fields)
        try:
            camera = camera_settings(fields, where)
        except ConfigError as exc:
            raise InventoryError(str(exc)) from None
        if problem := mask_count_problem(camera.masks, settings.relay.max_masks):
            raise InventoryError(f"{where} (id {camera.id!r}).masks: {problem}")
        if camera.api_reference is not None and settings.police_api is None:
            raise InventoryError(
                f"{where} (id {camera.id!r}).source: an api: source needs a [police_api] table"
            )
        if (earlier := first.setdefault(camera.id, where)) != where:
            raise InventoryError(f"{where} has the same id {camera.id!r} as {earlier}")
        cameras.append(camera)
    return cameras


def _json_cell(text: str, where: str, fields: dict[str, Any]) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:  # its words give the column, not the content
        ident = fields.get("id")
        named = f"{where} (id {ident!r})" if isinstance(ident, str) else where
        raise InventoryError(f"{named}.masks: not valid JSON ({exc})") from None


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(f"{path}: no such file") from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot be read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InventoryError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        return data.decode("utf-8-sig")  # a spreadsheet's UTF-8 export starts with a BOM
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: not valid UTF-8 (byte {exc.start})") from None


Rows = Iterator[tuple[str, dict[str, Any]]]


def _csv_rows(text: str, name: str, inventory: InventorySettings) -> Rows:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=inventory.delimiter)
    try:
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        raise InventoryError(f"{name}: is empty; the first line must name the columns") from None
    except csv.Error as exc:  # its words name the problem, not the content
        raise InventoryError(f"{name} line 1: {exc}") from None
    wanted = {
        field: column
        for field, column in vars(inventory.columns).items()
        if column  # "": not in this file
    }
    index = {}
    for field, column in wanted.items():
        if field == "masks" and column == DEFAULT_MASKS_COLUMN and column not in header:
            continue  # masks are read when the file has them
        if column not in header:
            known = ", ".join(repr(h) for h in header)[:300]
            raise InventoryError(
                f"{name}: no column {column!r} (inventory.columns.{field}); the header has {known}"
            )
        index[field] = header.index(column)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InventoryError(f"{name} line {reader.line_num}: {exc}") from None
        where = f"{name} line {reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue  # a blank line, as spreadsheets leave at the end
        if len(row) != len(header):
            raise InventoryError(
                f"{where}: has {len(row)} cells, the header names {len(header)} columns"
            )
        cells: dict[str, Any] = {field: row[i].strip() for field, i in index.items()}
        for field in ("lat", "lon"):
            cells[field] = _number(cells[field])
        yield where, cells


def _number(text: str) -> float | str:
    """A coordinate as a number; text that is not one goes on to the rules, which name it."""
    try:
        return float(text)
    except ValueError:
        return text


def _geojson_rows(text: str, name: str, inventory: InventorySettings) -> Rows:
    """Point features: the coordinates from the geometry, the rest from the properties
    (the id from the feature's own `id` when the properties have none)."""
    try:
        collection = json.loads(text)
    except ValueError as exc:  # its words give the line and column, not the content
        raise InventoryError(f"{name}: not valid JSON: {exc}") from None
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list):
        raise InventoryError(f"{name}: expected a GeoJSON FeatureCollection with features")
    columns = inventory.columns
    mapped = {
        field: column
        for field, column in vars(columns).items()
        if column and field not in ("lat", "lon")
    }
    for i, feature in enumerate(features):
        where = f"{name} features[{i}]"
        if not isinstance(feature, dict):
            raise InventoryError(f"{where}: expected a Feature object")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise InventoryError(f"{where}.properties: expected an object")
        cells: dict[str, Any] = {field: properties.get(column) for field, column in mapped.items()}
        if cells.get("id") is None:
            cells["id"] = feature.get("id")
        if isinstance(cells["id"], int) and not isinstance(cells["id"], bool):
            cells["id"] = str(cells["id"])  # GeoJSON ids are often numbers
        geometry = feature.get("geometry")
        point = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Point"
            or not isinstance(point, list)
            or len(point) < 2
        ):
            raise InventoryError(f"{where}.geometry: expected a Point with [lon, lat]")
        cells["lon"], cells["lat"] = point[0], point[1]
        yield where, cells
