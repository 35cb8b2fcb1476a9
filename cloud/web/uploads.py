"""The file of an import page's form: uploaded now, or carried from the page's clean check
to its import button (base64 in a hidden field, so that the same bytes are imported without
choosing the file again)."""

from __future__ import annotations

import base64
import binascii

from fastapi import UploadFile


async def form_file(
    file: UploadFile | None, carried: str, filename: str, limit: int
) -> tuple[bytes, str]:
    """(bytes, name) of the uploaded file (at most ``limit`` + 1 bytes read, so that the
    caller can say it is too large) or of the carried one; ``(b"", "")`` when neither."""
    if file is not None and file.filename:
        return await file.read(limit + 1), file.filename[:200]
    if carried:
        try:
            return base64.b64decode(carried, validate=True), filename
        except (binascii.Error, ValueError):
            pass
    return b"", ""


def carry(data: bytes, most: int) -> str:
    """``data`` for the hidden field of the import button; empty when larger than ``most``
    (the page then asks for the file again)."""
    return base64.b64encode(data).decode() if len(data) <= most else ""
