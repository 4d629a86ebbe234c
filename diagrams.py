"""
Drawing attention diagrams fast, from plain NumPy arrays (no TensorFlow here).

A diagram is the same picture CS50's straightforward renderer draws, built
differently:
- the label margins depend only on the tokens, so `label_canvas` draws them once
  per sentence (exactly as the straightforward renderer does) and every head
  reuses a copy;
- the grid is the whole attention matrix turned into gray levels at once and
  repeated into GRID_SIZE blocks with NumPy (`grid_pixels`), instead of one
  rectangle and one tensor read per cell;
- images are 8-bit grayscale, a third of RGB's bytes, and `png_bytes` encodes
  them with the PNG "Up" filter, which turns the grid's repeated rows into zeros
  that zlib compresses at its fastest level; inside `background_writes()` the
  encoding runs on a thread pool while the next diagram is drawn (zlib releases
  the GIL).
"""

import contextlib
import functools
import math
import os
import struct
import zlib
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np
from PIL import Image, ImageDraw

import outputs

# zlib level for the diagrams: 1 is the fastest, and after the "Up" filter the files stay small
PNG_COMPRESS_LEVEL = 1


def gray_level(score):
    """round(score * 255) for a score clipped to [0, 1]; NaN gives 0 (black)."""
    if math.isnan(score):
        return 0
    return round(min(max(score, 0.0), 1.0) * 255)


def gray_levels(scores):
    """gray_level for a whole array at once: uint8, same shape (rint rounds half to even, as round())."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(scores, 0.0, 1.0) * 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def label_canvas(tokens, font, grid_size, margin):
    """
    The black square with the token labels and an empty grid: a read-only
    (side, side) uint8 array of gray levels; cached, so a sentence pays for it once.

    It matches CS50's renderer pixel for pixel. That renderer draws each column
    label at (side - margin, y) on a transparent full-size layer, rotates the layer
    90 degrees and pastes it through its own alpha; here only the margin-wide
    strip of that layer that can hold the text is drawn and rotated, which lands
    on the same pixels at a fraction of the cost (a full layer per token is
    ~13 MB at 40 tokens, and grows with the square of the length).
    """
    size = grid_size * len(tokens) + margin
    image = Image.new("RGBA", (size, size), "black")
    draw = ImageDraw.Draw(image)
    for i, token in enumerate(tokens):
        y = margin + i * grid_size
        # Column label: the strip of rows [top, bottom) of the full layer, clipped to the image as it would be
        _, glyph_top, _, glyph_bottom = draw.textbbox((0, 0), token, font=font)  # multi-line aware, as text() is
        top, bottom = max(0, y + min(glyph_top, 0)), min(size, y + max(glyph_bottom, 1))
        if bottom > top:
            strip = Image.new("RGBA", (margin, bottom - top), (0, 0, 0, 0))
            ImageDraw.Draw(strip).text((0, y - top), token, fill="white", font=font)
            # Rotating by 90 degrees sends layer pixel (x, row) to (row, side - 1 - x): for this strip, offset (top, 0)
            strip = strip.transpose(Image.Transpose.ROTATE_90)
            image.paste(strip, (top, 0), mask=strip)
        # Row label: right-aligned against the grid
        _, _, width, _ = draw.textbbox((0, 0), token, font=font)
        draw.text((margin - width, y), token, fill="white", font=font)
    # White text on black: every channel is the same, so one channel loses nothing
    pixels = np.asarray(image.convert("L"))
    pixels.flags.writeable = False
    return pixels


def grid_pixels(attention_weights, grid_size):
    """The (seq, seq) attention matrix as gray pixels, each cell a grid_size x grid_size block."""
    levels = gray_levels(attention_weights)
    return np.repeat(np.repeat(levels, grid_size, axis=0), grid_size, axis=1)


def png_bytes(pixels):
    """
    A grayscale PNG of a (height, width) uint8 array. Every row uses filter 2
    ("Up": the difference to the row above), so the grid's repeated rows are zeros.
    """
    height, width = pixels.shape
    filtered = np.empty((height, width + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # the filter type byte that starts each row
    filtered[0, 1:] = pixels[0]
    np.subtract(pixels[1:], pixels[:-1], out=filtered[1:, 1:])  # wraps modulo 256, as PNG wants

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(filtered.tobytes(), PNG_COMPRESS_LEVEL))
        + chunk(b"IEND", b"")
    )


def head_pixels(tokens, attention_weights, font, grid_size, margin):
    """
    One head's diagram as a (side, side) uint8 array of gray levels: the label
    margins (drawn once per sentence, then copied) with the attention grid, cell
    (i, j) a grid_size block of the gray of attention_weights[i][j].
    """
    pixels = label_canvas(tuple(tokens), font, grid_size, margin).copy()
    pixels[margin:, margin:] = grid_pixels(attention_weights, grid_size)
    return pixels


def save_png(image, path):
    """
    Save a grayscale image (a uint8 array or a PIL image) as PNG, atomically: now,
    or on the thread pool of an enclosing `background_writes()` block.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L"))
    if _pool is None:
        _write_png(image, path)
    else:
        _pool.submit(_write_png, image, path)


@contextlib.contextmanager
def background_writes():
    """
    Inside this block, `save_png` encodes and writes on a few threads while the
    caller draws the next image (zlib releases the GIL). The block ends when every
    file is in place; on the first failure (disk full, Ctrl-C) the writes not yet
    started are dropped, those running finish, and the failure is raised.
    """
    global _pool
    outer, _pool = _pool, _WritePool()
    try:
        yield
        _pool.wait()
    finally:
        pool, _pool = _pool, outer
        pool.close()


# The pool of the enclosing background_writes() block, or None: save_png writes at once
_pool = None


class _WritePool:
    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        self.futures = []

    def submit(self, function, *arguments):
        self.futures.append(self.executor.submit(function, *arguments))

    def wait(self):
        done, _ = wait(self.futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()  # the first failure propagates

    def close(self):
        for future in self.futures:
            future.cancel()
        self.executor.shutdown(wait=True)


def _write_png(pixels, path):
    with outputs.atomic_file(path) as file:
        file.write(png_bytes(pixels))


def overview_image(attentions, font):
    """
    Every head at a glance: a grid of thumbnails, row = layer, column = head
    (numbered from 1, as in the file names), with a gray-scale legend.

    attentions: (layers, heads, seq, seq) float array. Returns an "L" image.
    """
    layers, heads, n, _ = attentions.shape
    scale = max(1, 96 // n)  # pixels per token: ~96 px thumbnails (2 px a cell at 40 tokens)
    thumb = n * scale
    gap = 8
    left, top = 110, 60
    legend_height = 70
    caption = "rows: layers, columns: heads; in each, row = attending token, column = attended-to; lighter = more"
    width = max(left + heads * (thumb + gap), left + int(font.getlength(caption)) + 20)
    height = top + layers * (thumb + gap) + legend_height
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    levels = gray_levels(attentions)
    for k in range(heads):
        x = left + k * (thumb + gap)
        draw.text((x + thumb // 2, top - 8), f"H{k + 1}", fill=255, font=font, anchor="ms")
    for i in range(layers):
        y = top + i * (thumb + gap)
        draw.text((left - 12, y + thumb // 2), f"L{i + 1}", fill=255, font=font, anchor="rm")
        for k in range(heads):
            x = left + k * (thumb + gap)
            cells = Image.fromarray(levels[i, k], "L").resize((thumb, thumb), Image.NEAREST)
            image.paste(cells, (x, y))
            draw.rectangle((x - 1, y - 1, x + thumb, y + thumb), outline=90)
    # Legend: a 0..1 gradient
    y = height - legend_height + 16
    bar_width = 400
    ramp = np.tile(np.linspace(0, 255, bar_width).round().astype(np.uint8), (18, 1))
    image.paste(Image.fromarray(ramp, "L"), (left, y))
    draw.rectangle((left - 1, y - 1, left + bar_width, y + 18), outline=128)
    draw.text((left - 12, y + 9), "0", fill=255, font=font, anchor="rm")
    draw.text((left + bar_width + 12, y + 9), "1", fill=255, font=font, anchor="lm")
    draw.text((left, y + 24), caption, fill=200, font=font)
    return image


def printable(token):
    """A label Pillow can always draw: control and other invisible characters become U+FFFD."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in token) or "\ufffd"
