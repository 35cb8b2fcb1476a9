"""Loading a case: from a YAML (or JSON) file or text, or already-parsed data, validated.

:func:`load_case` / :func:`parse_case` / :func:`case_from_data` validate everything before
anything is computed; a pydantic error becomes a :class:`~cloud.apportion.errors.CaseError`
naming the item (``units[2] (A103).area``). Decimal numbers stay exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cloud.apportion.case.document import Case
from cloud.apportion.case.schema import SINGLE
from cloud.apportion.errors import CaseError


class _CaseLoader(yaml.SafeLoader):
    """YAML loader keeping decimal numbers exact (Decimal instead of float)."""


def _decimal_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CaseError(
            f"line {node.start_mark.line + 1}: {text!r} is not a finite number"
        ) from None


_CaseLoader.add_constructor("tag:yaml.org,2002:float", _decimal_scalar)


def parse_case(text: str, source: str = "case") -> Case:
    """Parse and validate a case from YAML (or JSON) text; CaseError names the item."""
    try:
        raw = yaml.load(text, Loader=_CaseLoader)
    except yaml.YAMLError as exc:
        raise CaseError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise CaseError(f"{source}: a case file is a mapping of sections (period, meters ...)")
    return case_from_data(raw, source)


def case_from_data(raw: Mapping[str, Any], source: str = "case") -> Case:
    """Validate already-parsed case data (e.g. a run's stored canonical inputs)."""
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _describe(error["loc"], raw)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        got = error.get("input")
        shown = f", got {got!r}" if not isinstance(got, Mapping | list) else ""
        raise CaseError(f"{source}: {where}: {error['msg']}{shown}{more}") from None
    case.validate_case()
    return case


def load_case(path: Path) -> Case:
    """Read, parse and validate the case file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseError(f"{path}: cannot read the case file: {exc.strerror}") from None
    return parse_case(text, str(path))


def _describe(loc: tuple[Any, ...], raw: Any) -> str:
    """``units[2] (A103).area`` from a pydantic error location and the raw data."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if key in ("values", SINGLE):
            continue
        if isinstance(key, int) and isinstance(node, list):
            node = node[key] if key < len(node) else None
            label = f"[{key}]"
            if isinstance(node, Mapping) and "id" in node:
                label += f" ({node['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, Mapping) else None
    return "".join(parts) or "case"
