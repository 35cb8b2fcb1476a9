"""Loading a case: from a YAML (or JSON) file or text, or already-parsed data, validated.

:func:`load_case` / :func:`parse_case` / :func:`case_from_data` validate everything before
anything is computed; a pydantic error becomes a :class:`~cloud.apportion.errors.CaseError`
naming the item (``units[2] (A103).area``). Decimal numbers stay exact.

A case file comes from outside, so the reader bounds it before building anything: at most
:data:`MAX_CASE_BYTES`, nesting at most :data:`MAX_DEPTH` deep, no YAML aliases (``*name``:
one alias can stand for a whole section many times over), no key twice in one mapping (the
last one would silently win: a bill's ``total`` given twice), every number finite and below
:data:`MAX_MAGNITUDE` in size; an error's text is bounded too.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cloud.apportion.case.document import Case
from cloud.apportion.case.schema import MAX_MAGNITUDE, SINGLE
from cloud.apportion.errors import CaseError

#: Largest case file read [bytes]; a month of one site's boundary readings is far below it.
MAX_CASE_BYTES = 8 * 1024 * 1024
#: Deepest nesting of mappings and lists; a case file needs about six levels.
MAX_DEPTH = 32
#: Longest number literal [characters]; longer ones are refused before conversion.
_MAX_NUMBER_CHARS = 40
#: Longest quotation of an offending value in an error message [characters].
_MAX_SHOWN = 120


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _line(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}"


class _CaseLoader(yaml.SafeLoader):
    """YAML loader keeping decimal numbers exact (Decimal instead of float), refusing
    aliases, deep nesting, duplicate keys and numbers out of range."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise CaseError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "accepted in a case file; write the section out"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise CaseError(
                    f"line {event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base constructor refuses it with its own message
            if key in seen:
                raise CaseError(
                    f"{_line(key_node)}: key {_shown(key)} appears twice in one mapping "
                    f"(first on line {seen[key]}); give it once"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _number_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if len(text) > _MAX_NUMBER_CHARS:
        raise CaseError(
            f"{_line(node)}: a number of {len(text)} characters; at most "
            f"{_MAX_NUMBER_CHARS} are accepted"
        )
    return text


def _bounded(value: Decimal, text: str, node: yaml.ScalarNode) -> Decimal:
    if not value.is_finite() or abs(value) >= MAX_MAGNITUDE:
        raise CaseError(
            f"{_line(node)}: {_shown(text)} is not a finite number below {MAX_MAGNITUDE:.0e} "
            "in size"
        )
    return value


def _decimal_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = _number_text(loader, node)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CaseError(f"{_line(node)}: {_shown(text)} is not a finite number") from None
    return _bounded(value, text, node)


def _int_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = _number_text(loader, node)
    value = loader.construct_yaml_int(node)  # type: ignore[attr-defined]
    _bounded(Decimal(value), text, node)
    return int(value)


_CaseLoader.add_constructor("tag:yaml.org,2002:float", _decimal_scalar)
_CaseLoader.add_constructor("tag:yaml.org,2002:int", _int_scalar)


def read_sections(text: str, source: str, kind: str = "case file") -> Mapping[str, Any]:
    """Parse bounded YAML (or JSON) text into its mapping of sections, before validation.

    Every bound of the module docstring applies (size, depth, aliases, duplicate keys,
    numbers); ``kind`` names the document in messages ("case file", "site file", "bill").
    """
    size = len(text.encode("utf-8"))
    if size > MAX_CASE_BYTES:
        raise CaseError(f"{source}: {size} bytes; a {kind} may have at most {MAX_CASE_BYTES} bytes")
    try:
        raw = yaml.load(text, Loader=_CaseLoader)
    except CaseError as exc:
        raise CaseError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CaseError(f"{source}: not valid YAML: {_bounded_text(str(exc))}") from None
    if not isinstance(raw, Mapping):
        raise CaseError(f"{source}: a {kind} is a mapping of sections")
    return raw


def read_text(path: Path, kind: str = "case file") -> str:
    """The UTF-8 text of ``path``, at most :data:`MAX_CASE_BYTES` read; CaseError otherwise."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CASE_BYTES + 1)
    except OSError as exc:
        raise CaseError(f"{path}: cannot read the {kind}: {exc.strerror}") from None
    if len(data) > MAX_CASE_BYTES:
        raise CaseError(f"{path}: a {kind} may have at most {MAX_CASE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def parse_case(text: str, source: str = "case") -> Case:
    """Parse and validate a case from YAML (or JSON) text; CaseError names the item."""
    return case_from_data(read_sections(text, source), source)


def case_from_data(raw: Mapping[str, Any], source: str = "case") -> Case:
    """Validate already-parsed case data (e.g. a run's stored canonical inputs)."""
    try:
        case = Case.model_validate(raw)
    except CaseError as exc:  # a reading refused (case.readings names it)
        raise CaseError(f"{source}: {_bounded_text(str(exc))}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _describe(error["loc"], raw)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        got = error.get("input")
        shown = f", got {_shown(got)}" if not isinstance(got, Mapping | list) else ""
        message = _bounded_text(f"{where}: {error['msg']}{shown}")
        raise CaseError(f"{source}: {message}{more}") from None
    case.validate_case()
    return case


def load_case(path: Path) -> Case:
    """Read, parse and validate the case file at ``path`` (at most :data:`MAX_CASE_BYTES`)."""
    return parse_case(read_text(path), str(path))


def describe_errors(exc: ValidationError, raw: Any) -> list[str]:
    """One bounded line per field error, naming its item (``units[2] (A103).area``)."""
    out = []
    for error in exc.errors():
        got = error.get("input")
        shown = f", got {_shown(got)}" if not isinstance(got, Mapping | list) else ""
        out.append(_bounded_text(f"{_describe(error['loc'], raw)}: {error['msg']}{shown}"))
    return out


def _bounded_text(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
