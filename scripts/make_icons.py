"""Draw the Teams app icons: `color.png` (192x192) and `outline.png` (32x32, white on transparent).

Deterministic (same pixels, same bytes on every run), so the committed PNGs can be checked against it:
`python scripts/make_icons.py [--out manifests/teams]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

ACCENT = (68, 100, 238, 255)  # #4464EE, the manifest's accentColor
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "manifests" / "teams"


def bubble(
    draw: ImageDraw.ImageDraw, scale: float, *, outline: int | None, fill: tuple[int, ...] | None
) -> None:
    """A speech bubble holding three text lines and a citation mark, on a 32-unit grid."""

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (round(x0 * scale), round(y0 * scale), round(x1 * scale) - 1, round(y1 * scale) - 1)

    width = outline or 0
    draw.rounded_rectangle(box(3, 4, 29, 23), radius=round(4 * scale), outline=WHITE, fill=fill, width=width)
    tail = [(8 * scale, 22 * scale), (8 * scale, 29 * scale), (15 * scale, 22 * scale)]
    draw.polygon([(round(x), round(y)) for x, y in tail], fill=fill or WHITE, outline=WHITE)
    line = ACCENT if fill else WHITE
    for row, end in ((9, 22), (13, 20), (17, 16)):
        draw.rectangle(box(8, row, end, row + 2), fill=line)
    draw.rectangle(box(19, 16, 21, 20), fill=line)  # "[1]"-like citation mark
    draw.rectangle(box(23, 16, 25, 20), fill=line)


def color_icon() -> Image.Image:
    image = Image.new("RGBA", (192, 192), ACCENT)
    bubble(ImageDraw.Draw(image), 6.0, outline=None, fill=WHITE)
    return image.convert("RGB")


def outline_icon() -> Image.Image:
    image = Image.new("RGBA", (32, 32), CLEAR)
    bubble(ImageDraw.Draw(image), 1.0, outline=2, fill=None)
    return image


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in (("color.png", color_icon()), ("outline.png", outline_icon())):
        path = out / name
        image.save(path, format="PNG", optimize=False)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for color.png and outline.png")
    for path in write(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
