"""QR codes of statement links, rendered on the server with segno (inline SVG)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(url: str, scale: int = 4) -> Markup:
    """An inline SVG QR code (error correction M) of ``url``."""
    return Markup(segno.make(url, error="m").svg_inline(scale=scale, title=url))
