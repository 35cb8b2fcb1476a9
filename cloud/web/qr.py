"""QR codes of statement links, rendered on the server with segno (inline SVG).

The SVG has a ``viewBox`` and no fixed width or height (segno's ``omitsize``), so a
stylesheet can size it without cutting it: the whole symbol and its quiet zone (4 modules,
as ISO/IEC 18004 asks) scale together. Dark modules are black on white, also in print.
"""

from __future__ import annotations

import segno
from markupsafe import Markup

#: The quiet zone around the symbol [modules].
QUIET_ZONE = 4


def qr_svg(url: str, label: str = "") -> Markup:
    """An inline SVG QR code (error correction M) of ``url`` that scales to any size;
    ``label`` (default: the URL) is its accessible name."""
    code = segno.make(url, error="m")
    svg = code.svg_inline(
        scale=1,
        border=QUIET_ZONE,
        omitsize=True,
        dark="#000",
        light="#fff",
        title=label or url,
        svgclass="qr-code",
    )
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))
