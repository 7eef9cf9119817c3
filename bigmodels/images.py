"""Image grids and PNG encoding, with no imaging library: the trainer writes the grids
that generative tasks return at each eval (samples, reconstructions)."""

import struct
import zlib

import numpy as np


def grid(images, columns: int = 8, pad: int = 1) -> np.ndarray:
    """N x H x W (x C) values in [0, 1] -> one (rows*(H+pad)+pad) x ... x C uint8 image."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    out = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, k = divmod(i, columns)
        out[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + k * (w + pad):pad + k * (w + pad) + w] = image
    return (np.clip(out, 0.0, 1.0) * 255).round().astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 4) -> bytes:
    """An H x W x C (C = 1 or 3) uint8 array as PNG bytes, each pixel `scale` x `scale`."""
    image = np.repeat(np.repeat(np.asarray(image, np.uint8), scale, 0), scale, 1)
    h, w, c = image.shape
    color_type = {1: 0, 3: 2}[c]              # greyscale or RGB, 8 bits per channel

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + image[y].tobytes() for y in range(h))   # filter 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
