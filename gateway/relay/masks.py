"""MaskPainter: paints a camera's privacy masks onto its decoded pictures.

A mask's polygon is in fractions of the picture (config.MaskSettings); a painter
turns the masks into runs of pixels, row by row, for one picture size, once, and
then overwrites those runs in every picture: with one flat colour ("solid"), or
with the picture shrunk to coarse blocks and blown up again ("pixelate"). Both
throw the masked pixels away; neither is a blur that could be undone.

It works on yuv420p pictures through PyAV's plane buffers, a slice assignment per
run, so a 720p picture with a few masks costs well under a millisecond.
"""

from __future__ import annotations

import math

import av
from av.video.reformatter import Interpolation, VideoReformatter

from gateway.config import MaskSettings

# The solid fill: black in limited-range YUV (luma 16, neutral chroma).
SOLID = (16, 128, 128)
# Pixelation blocks: this fraction of the picture's width, and never under 16 pixels
# (40 px at 1280x720): a face or a number plate becomes one or two flat blocks.
PIXELATE_BLOCKS_ACROSS = 32
PIXELATE_MIN_BLOCK = 16

Run = tuple[int, int, int]  # row, first column, end column (exclusive)
Polygon = tuple[tuple[float, float], ...]


class MaskPainter:
    """The masks of one camera for one picture size."""

    def __init__(self, masks: tuple[MaskSettings, ...], width: int, height: int) -> None:
        self.masks = masks
        self.width, self.height = width, height
        solid = [m.polygon for m in masks if m.fill == "solid"]
        coarse = [m.polygon for m in masks if m.fill == "pixelate"]
        # Per plane (Y, U, V): the runs to fill, and the runs to pixelate.
        self._solid = _plane_runs(_rasterize(solid, width, height))
        self._coarse = _plane_runs(_rasterize(coarse, width, height))
        block = max(PIXELATE_MIN_BLOCK, width // PIXELATE_BLOCKS_ACROSS)
        self._blocks = (max(1, math.ceil(width / block)), max(1, math.ceil(height / block)))
        self._shrink = VideoReformatter()
        self._grow = VideoReformatter()

    def fits(self, masks: tuple[MaskSettings, ...], width: int, height: int) -> bool:
        return (masks, width, height) == (self.masks, self.width, self.height)

    def paint(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A masked copy of `frame` (which is left as it was: a decoder may still
        refer to it), in yuv420p."""
        if (frame.width, frame.height) != (self.width, self.height):
            raise ValueError("the picture is not the size the masks were placed for")
        picture = _copy_yuv420p(frame)
        if any(self._coarse):
            small = self._shrink.reformat(
                picture,
                *self._blocks,
                format="yuv420p",
                interpolation=Interpolation.AREA,
                threads=1,
            )
            coarse = self._grow.reformat(
                small,
                self.width,
                self.height,
                interpolation=Interpolation.POINT,
                threads=1,
            )
            for index, runs in enumerate(self._coarse):
                _copy_runs(coarse.planes[index], picture.planes[index], runs)
        for index, runs in enumerate(self._solid):
            _fill_runs(picture.planes[index], runs, SOLID[index])
        return picture


def _copy_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name != "yuv420p":
        return frame.reformat(format="yuv420p")  # a new picture already
    picture = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for source, target in zip(frame.planes, picture.planes, strict=True):
        if source.line_size == target.line_size:
            memoryview(target)[:] = memoryview(source)[: target.buffer_size]
        else:
            _copy_rows(source, target)
    picture.color_range = frame.color_range
    picture.colorspace = frame.colorspace
    picture.color_primaries = frame.color_primaries
    picture.color_trc = frame.color_trc
    return picture


def _copy_rows(source: av.video.plane.VideoPlane, target: av.video.plane.VideoPlane) -> None:
    src, dst = memoryview(source), memoryview(target)
    width = target.width
    for row in range(target.height):
        s, d = row * source.line_size, row * target.line_size
        dst[d : d + width] = src[s : s + width]


def _fill_runs(plane: av.video.plane.VideoPlane, runs: list[Run], value: int) -> None:
    if not runs:
        return
    buffer = memoryview(plane)
    fill = bytes([value]) * plane.width
    stride = plane.line_size
    for row, start, end in runs:
        offset = row * stride
        buffer[offset + start : offset + end] = fill[: end - start]


def _copy_runs(
    source: av.video.plane.VideoPlane, target: av.video.plane.VideoPlane, runs: list[Run]
) -> None:
    src, dst = memoryview(source), memoryview(target)
    s_stride, d_stride = source.line_size, target.line_size
    for row, start, end in runs:
        dst[row * d_stride + start : row * d_stride + end] = src[
            row * s_stride + start : row * s_stride + end
        ]


def _rasterize(
    polygons: list[tuple[tuple[float, float], ...]], width: int, height: int
) -> list[Run]:
    """The union of the polygons as runs of luma pixels, row by row.

    A pixel belongs to a polygon when any part of it does (the run found at the
    row's centre is widened by a pixel each side, and the rows above and below are
    included), so the edge of a masked area leaks nothing of what lies inside.
    """
    centre: list[list[tuple[int, int]]] = [[] for _ in range(height)]
    for polygon in polygons:
        points = [(x * width, y * height) for x, y in polygon]
        edges = list(zip(points, points[1:] + points[:1], strict=True))
        top = max(0, math.floor(min(y for _, y in points)) - 1)
        bottom = min(height, math.ceil(max(y for _, y in points)) + 1)
        for row in range(top, bottom):
            y = row + 0.5
            crossings = sorted(
                x0 + (y - y0) * (x1 - x0) / (y1 - y0)
                for (x0, y0), (x1, y1) in edges
                if (y0 <= y < y1) or (y1 <= y < y0)
            )
            for a, b in zip(crossings[::2], crossings[1::2], strict=False):
                start, end = max(0, math.floor(a) - 1), min(width, math.ceil(b) + 1)
                if start < end:
                    centre[row].append((start, end))
        # A polygon thinner than a row still covers the rows it passes through.
        for x, y in points:
            row = min(height - 1, max(0, int(y)))
            column = min(width - 1, max(0, int(x)))
            centre[row].append((max(0, column - 1), min(width, column + 2)))
    runs: list[Run] = []
    for row in range(height):
        spans = [s for r in (row - 1, row, row + 1) if 0 <= r < height for s in centre[r]]
        runs.extend((row, start, end) for start, end in _merged(spans))
    return runs


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _plane_runs(luma: list[Run]) -> tuple[list[Run], list[Run], list[Run]]:
    """Luma runs, and the chroma runs (half the size each way) of every chroma pixel
    that covers a masked luma pixel."""
    by_row: dict[int, list[tuple[int, int]]] = {}
    for row, start, end in luma:
        by_row.setdefault(row // 2, []).append((start // 2, (end + 1) // 2))
    chroma = [(row, s, e) for row, spans in sorted(by_row.items()) for s, e in _merged(spans)]
    return list(luma), chroma, list(chroma)
