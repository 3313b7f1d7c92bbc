#!/usr/bin/env python3
"""Pixel statistics of a PNG screenshot, for the HTML report's browser test.

    png-stats.py FILE [RRGGBB...]

Prints one JSON object: width, height, the fraction of pixels that are not white, the number
of distinct colours, and for each colour given how many pixels have it exactly. Only the
standard library: 8-bit RGB or RGBA, non-interlaced, which is what Chromium writes.
"""
import json
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise SystemExit(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev, k = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[k], bytearray(raw[k + 1 : k + 1 + stride])
        k += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    width, height, bpp, rows = read_png(sys.argv[1])
    wanted = {c.lower(): 0 for c in sys.argv[2:]}
    counts = {}
    for row in rows:
        for x in range(0, len(row), bpp):
            rgb = row[x : x + 3]
            counts[rgb] = counts.get(rgb, 0) + 1
    white = counts.get(b"\xff\xff\xff", 0)
    for rgb, n in counts.items():
        key = rgb.hex()
        if key in wanted:
            wanted[key] = n
    print(json.dumps({
        "width": width,
        "height": height,
        "nonwhite": round(1 - white / (width * height), 4),
        "colours": len(counts),
        "counts": wanted,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
