"""A city-sized camera inventory for the browser tests: 15,000 points over Taipei in an
inventory CSV (docs/configuration.md), with districts and roads, and the settings that
read it. No camera is ever pulled from it."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

from .gateway import settings_for

CITY = 15_000
DISTRICTS = ["中正區", "大同區", "中山區", "松山區", "大安區", "萬華區", "信義區", "士林區"]
ROADS = ["忠孝東路", "仁愛路", "信義路", "和平東路", "南京東路", "民生東路", "中山北路", "承德路"]
# One camera that a search must find among the 15,000.
NEEDLE = {"name": "市民大道/建國南路口", "district": "中山區", "road": "建國高架橋下"}


def write_city(
    path: Path,
    count: int = CITY,
    named: dict[str, tuple[str, str, str]] | None = None,
    digits: int = 5,
    seed: int = 16,
) -> Path:
    """Points spread over Taipei, with api: references (no camera is ever pulled here).
    `named`: cameras (by id) given a name, district and road a search must find; by
    default the NEEDLE, five sevenths of the way down the file."""
    rng = random.Random(seed)
    if named is None:
        named = {f"tpe-{count * 5 // 7:0{digits}d}": tuple(NEEDLE.values())}
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "name", "lat", "lon", "district", "road", "source"])
        for i in range(count):
            camera = f"tpe-{i:0{digits}d}"
            road = f"{rng.choice(ROADS)}{rng.randint(1, 5)}段"
            name, district = f"{road} {i:0{digits}d} 號路口", rng.choice(DISTRICTS)
            if camera in named:
                name, district, road = named[camera]
            lat = round(24.98 + rng.random() * 0.14, 6)
            lon = round(121.46 + rng.random() * 0.16, 6)
            writer.writerow([camera, name, lat, lon, district, road, f"TPD-{i:0{digits}d}"])
    return path


def city_settings(path: Path, **options: Any):
    """Settings that read the inventory at `path`; `options` go to settings_for."""
    return settings_for(
        [],
        tables={
            "inventory": {
                "file": str(path),
                "source_prefix": "api:",
                "columns": {"district": "district", "road": "road"},
            },
            # Never asked: nobody watches in these tests (port 9 would refuse anyway).
            "police_api": {"url": "http://127.0.0.1:9/cctv/{ref}", "token": "never-sent"},
        },
        **options,
    )
