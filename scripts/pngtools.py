"""Tiny PNG reading and writing (8-bit greyscale, RGB, RGBA; no interlace) for the report's
screenshots: the browser test checks one is not blank, scripts/report-screenshot trims one.

Rows filtered None, Sub or Up are undone with numpy; Average and Paeth depend on the pixel to
their left, so those rows are undone byte by byte.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> channels


def chunks(data: bytes):
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    position = len(SIGNATURE)
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        yield kind, data[position + 8 : position + 8 + length]
        position += 12 + length


def paeth(left: int, up: int, up_left: int) -> int:
    estimate = left + up - up_left
    to_left, to_up, to_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
    if to_left <= to_up and to_left <= to_up_left:
        return left
    return up if to_up <= to_up_left else up_left


def unfilter_slowly(kind: int, row: bytes, previous: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, value in enumerate(row):
        left = out[i - bpp] if i >= bpp else 0
        up_left = previous[i - bpp] if i >= bpp else 0
        if kind == 3:
            predictor = (left + previous[i]) // 2
        else:
            predictor = paeth(left, previous[i], up_left)
        out[i] = (value + predictor) & 0xFF
    return bytes(out)


def unfilter(kind: int, row: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    if kind == 0:
        return row
    if kind == 1:  # Sub: a running sum per channel, modulo 256
        return np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
    if kind == 2:
        return row + previous
    if kind in (3, 4):
        return np.frombuffer(unfilter_slowly(kind, row.tobytes(), previous.tobytes(), bpp), np.uint8)
    raise ValueError(f"unknown PNG filter {kind}")


def read_png(path) -> np.ndarray:
    """The image as a uint8 array [height, width, channels]."""
    data = open(path, "rb").read()
    header, compressed = None, b""
    for kind, body in chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = CHANNELS[colour]
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(compressed), np.uint8).reshape(height, stride + 1)
    image = np.zeros((height, stride), np.uint8)
    previous = np.zeros(stride, np.uint8)
    for y in range(height):
        previous = image[y] = unfilter(int(raw[y, 0]), raw[y, 1:], previous, bpp)
    return image.reshape(height, width, bpp)


def distinct_colours(image: np.ndarray) -> int:
    flat = image.reshape(-1, image.shape[2])
    packed = np.zeros(len(flat), np.uint32)
    for channel in range(flat.shape[1]):
        packed = (packed << 8) | flat[:, channel]
    return len(np.unique(packed))


def write_png(path, image: np.ndarray) -> None:
    """Write a uint8 [height, width, 3 or 4] image, every row unfiltered."""
    height, width, channels = image.shape
    colour = {3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def trim_bottom(image: np.ndarray, margin: int = 24) -> np.ndarray:
    """Cut the rows of background colour below the content, keeping a margin."""
    background = image[-1, 0]
    busy = np.flatnonzero((image != background).any(axis=(1, 2)))
    last = int(busy[-1]) + 1 if len(busy) else 1
    return image[: min(image.shape[0], last + margin)]


if __name__ == "__main__":  # python3 scripts/pngtools.py trim IN OUT
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "trim":
        sys.exit("usage: pngtools.py trim IN.png OUT.png")
    write_png(sys.argv[3], trim_bottom(read_png(sys.argv[2])))
