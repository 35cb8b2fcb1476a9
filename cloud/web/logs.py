"""Tenant links' tokens never reach a log.

A tenant link (``/t/{unit}/{token}``) is the tenant's only credential, and uvicorn's access
log writes every request's path. :func:`install_redaction` wraps the logging module's record
factory, so every record made in the process (uvicorn's access and error logs, our own
loggers) has its message, arguments and formatted exception rewritten before any handler
sees it: the token segment after ``/t/{unit}/`` and ``/api/v1/tenant/{unit}/`` becomes
``[redacted]``, and so does anything shaped like a link token elsewhere.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
#: the path segment after /t/{unit}/ or /api/v1/tenant/{unit}/ (percent-encoded or not)
_PATH_TOKEN = re.compile(r"(/(?:t|api/v1/tenant)/[^/\s?#\"']+/)[^/\s?#\"']+")
#: base64url(96-bit nonce ‖ 32-bit expiry) "." base64url(128-bit tag): 22 + 1 + 22 characters
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")


def redact(text: str) -> str:
    """``text`` with tenant link tokens replaced by ``[redacted]``."""
    if "/" not in text and "." not in text:
        return text
    return _TOKEN.sub(REDACTED, _PATH_TOKEN.sub(lambda m: m.group(1) + REDACTED, text))


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))


def install_redaction() -> None:
    """Make every log record of the process redact tenant tokens (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts_tenant_tokens", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts_tenant_tokens = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
