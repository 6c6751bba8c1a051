"""A PNG of latency distributions, ours vs raw, with the standard library only.

One band per benchmark: a box from p25 to p75, whiskers from p5 to p95, a bar at the
median and a dot at p99, raw in grey above ours in blue, on one log-scale millisecond axis.
The PNG is written by hand (zlib + CRC chunks) and text drawn with a 5x7 bitmap font, so
the bench needs no plotting library.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from bench._stats import Row, percentile

__all__ = ["write_chart"]

_FONT_ROWS = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    ">": "01000 00100 00010 00001 00010 00100 01000",
    "<": "00010 00100 01000 10000 01000 00100 00010",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    "/": "00000 00001 00010 00100 01000 10000 00000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    "'": "01100 00100 01000 00000 00000 00000 00000",
    "?": "01110 10001 00001 00010 00100 00000 00100",
}
_FONT = {ch: [int(bits, 2) for bits in rows.split()] for ch, rows in _FONT_ROWS.items()}

WHITE = (255, 255, 255)
BLACK = (20, 20, 20)
GRID = (225, 225, 225)
RAW = (140, 140, 140)
OURS = (40, 110, 200)
FAIL = (200, 50, 40)


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(bytes(WHITE) * (width * height))

    def rect(self, x0: float, y0: float, x1: float, y1: float, rgb: tuple[int, int, int]) -> None:
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        xa, ya = max(xa, 0), max(ya, 0)
        xb, yb = min(xb, self.w - 1), min(yb, self.h - 1)
        line = bytes(rgb) * (xb - xa + 1)
        for y in range(ya, yb + 1):
            start = (y * self.w + xa) * 3
            self.px[start : start + len(line)] = line

    def text(
        self, x: int, y: int, s: str, rgb: tuple[int, int, int] = BLACK, scale: int = 2
    ) -> int:
        for ch in s.upper():
            rows = _FONT.get(ch, _FONT["?"])
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (1 << (4 - c)):
                        self.rect(
                            x + c * scale,
                            y + r * scale,
                            x + c * scale + scale - 1,
                            y + r * scale + scale - 1,
                            rgb,
                        )
            x += 6 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            )

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def write_chart(rows: list[Row], path: Path, title: str) -> bool:
    """Write the PNG; False if no row has latency samples to draw."""
    bands = [r for r in rows if r.ours and r.ours.samples and r.ours.unit == "ms"]
    if not bands:
        return False
    left, right, top, band_h = 450, 40, 70, 56
    width = 1280
    height = top + band_h * len(bands) + 60
    cv = _Canvas(width, height)
    values = [x for r in bands for d in (r.raw, r.ours) if d for x in d.samples if x > 0]
    lo = 10 ** math.floor(math.log10(max(min(values), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    span = width - left - right

    def xpos(ms: float) -> float:
        return left + span * (math.log10(max(ms, lo)) - math.log10(lo)) / (
            math.log10(hi) - math.log10(lo)
        )

    cv.text(20, 14, title, BLACK, 2)
    legend = cv.text(20, 40, "raw baseline", RAW, 2)
    legend = cv.text(legend + 24, 40, "ours", OURS, 2)
    cv.text(legend + 24, 40, "box p25-p75, whiskers p5-p95, dot p99, log ms", BLACK, 2)
    decade = lo
    bottom = top + band_h * len(bands)
    while decade <= hi * 1.0001:
        x = xpos(decade)
        cv.rect(x, top, x, bottom, GRID)
        label = f"{decade:g}"
        cv.text(int(x) - len(label) * 6, bottom + 8, label, BLACK, 2)
        decade *= 10
    cv.text(left + span // 2 - 20, bottom + 32, "MS", BLACK, 2)
    for i, row in enumerate(bands):
        y = top + i * band_h
        cv.rect(left, y + band_h - 1, width - right, y + band_h - 1, GRID)
        color = FAIL if row.verdict == "fail" else BLACK
        cv.text(10, y + 12, row.title[:36], color, 2)
        cv.text(10, y + 32, f"{row.id}: {row.verdict}", color, 2)
        for j, (dist, rgb) in enumerate(((row.raw, RAW), (row.ours, OURS))):
            if dist is None or not dist.samples:
                continue
            s = dist.samples
            yc = y + 16 + j * 24
            p5, p25, p50, p75, p95, p99 = (percentile(s, q) for q in (5, 25, 50, 75, 95, 99))
            cv.rect(xpos(p5), yc, xpos(p95), yc + 1, rgb)
            cv.rect(xpos(p5), yc - 5, xpos(p5) + 1, yc + 6, rgb)
            cv.rect(xpos(p95) - 1, yc - 5, xpos(p95), yc + 6, rgb)
            cv.rect(xpos(p25), yc - 8, xpos(p75), yc + 9, rgb)
            cv.rect(xpos(p50) - 1, yc - 10, xpos(p50) + 1, yc + 11, BLACK)
            cv.rect(xpos(p99) - 3, yc - 3, xpos(p99) + 3, yc + 4, rgb)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv.png())
    return True
