"""Reading the gateway's Prometheus text the way a scraper does."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(gateway) -> dict[tuple[str, tuple], float]:
    async with gateway.http.get(f"{gateway.url}/metrics") as response:
        assert response.status == 200
        return samples(await response.text())


def per_camera(values: dict[tuple[str, tuple], float], name: str, camera_id: str) -> float:
    return values[(name, (("camera", camera_id),))]
