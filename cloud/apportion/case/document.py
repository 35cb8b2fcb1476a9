"""The Case: a whole case file with its checks, canonical form, input hash and engine inputs.

:meth:`Case.validate_case` runs the cross-field checks, :meth:`Case.to_engine_inputs` turns
a valid case into :class:`~cloud.apportion.engine_inputs.EngineInputs` (canonical order:
everything sorted by id, so the input order of the file never matters), and
:meth:`Case.canonical_json` gives the bytes the run's input hash is computed over.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cloud.apportion.case.canonical import decimal_text, plain, plain_json
from cloud.apportion.case.conversion import build_engine_inputs
from cloud.apportion.case.readings import MeterReading, Readings, ReadingTable
from cloud.apportion.case.schema import CaseSchema
from cloud.apportion.case.validation import check_case
from cloud.apportion.engine_inputs import EngineInputs


class Case(CaseSchema):
    """A whole apportionment problem (see module docstring)."""

    # ------------------------------------------------------------------ validation

    def validate_case(self) -> None:
        """Cross-field checks; raises CaseError naming the first item at fault."""
        check_case(self)

    # ------------------------------------------------------------------ canonical form

    def canonical(self) -> dict[str, Any]:
        """The case as plain JSON values in a canonical order (lists sorted by id, dates
        ISO, decimals normalised) — the same for any order of the file's items."""
        return self._canonical(None)

    def canonical_bytes_and_stored(self) -> tuple[bytes, Case]:
        """:meth:`canonical_json` and the case as it reads back from it (see
        :meth:`canonical_and_stored`). Readings held as a :class:`ReadingTable` (a close's)
        are written from its arrays in one pass and spliced into the rest of the canonical
        JSON (the same bytes as through :meth:`canonical`); the stored case keeps the table:
        its values are in canonical form already."""
        if not isinstance(self.readings, ReadingTable):
            plain_case, stored = self.canonical_and_stored()
            return plain_json(plain_case), stored
        out = self._canonical(None, with_readings=False)
        stored = type(self).model_validate({**out, "readings": self.readings})
        return self._splice(out), stored

    def _splice(self, out: dict[str, Any]) -> bytes:
        """Canonical JSON of ``out`` (the canonical form without its readings) with the
        table's readings written in at their place."""
        assert isinstance(self.readings, ReadingTable)
        marker = f"readings-{uuid.uuid4().hex}"
        text = plain_json({**out, "readings": marker})
        quoted = f'"{marker}"'.encode()
        assert text.count(quoted) == 1
        return text.replace(quoted, self.readings.canonical_text().encode(), 1)

    def canonical_and_stored(self) -> tuple[dict[str, Any], Case]:
        """:meth:`canonical` and the case as it reads back from it: what ``rerun()``
        validates from a run's stored inputs (decimals in canonical form: a price of 0.50
        reads 0.5), without a JSON round trip. The site part is validated again from the
        plain values; the readings, checked already, are taken over (one whose values are
        in canonical form as it is, the others with their values in that form)."""
        if isinstance(self.readings, ReadingTable):  # in canonical form already
            out = self._canonical(None)
            return out, type(self).model_validate({**out, "readings": self.readings})
        readings = Readings()
        out = self._canonical(readings)
        return out, type(self).model_validate({**out, "readings": readings})

    def _canonical(self, stored: Readings | None, with_readings: bool = True) -> dict[str, Any]:
        data = self.model_dump(mode="python", by_alias=True, exclude={"readings"})
        data["units"] = sorted(data["units"], key=lambda u: u["id"])
        data["meters"] = sorted(data["meters"], key=lambda m: m["id"])
        data["tree"] = sorted(data["tree"], key=lambda n: n["id"])
        data["tariffs"] = sorted(data["tariffs"], key=lambda t: (t["from"], t["id"]))
        data["occupancy"] = {
            u: sorted(s, key=lambda o: o["from"]) for u, s in data["occupancy"].items()
        }
        # display names added later (meters, tenants) enter the hash only when given, so
        # the input hash of a case without them is what it was before they existed
        for meter in data["meters"]:
            if not meter["name"]:
                del meter["name"]
        for stays in data["occupancy"].values():
            for stay in stays:
                if not stay["name"]:
                    del stay["name"]
        for node in data["tree"]:
            if node["rule"] is not None:
                node["rule"]["shared_by"] = sorted(node["rule"]["shared_by"])
        out = plain(data)
        if not with_readings:
            return out
        # the bulk of a case (a reading per meter and day), written out as plain values in
        # one pass (what model_dump + plain gave, without their walk over 300,000 readings)
        readings: dict[str, dict[str, Any]] = {}
        if isinstance(self.readings, ReadingTable):
            out["readings"] = json.loads(self.readings.canonical_text())
            return out
        for m, series in self.readings.items():
            texts: dict[str, Any] = {}
            kept: dict[date | datetime, MeterReading] = {}
            for at, r in series.items():
                day = self.reading_day(m, at)
                values = {k: decimal_text(v) for k, v in r.values.items()}
                text = {"method": r.method, "quality": r.quality, "values": values}
                texts[day.isoformat()] = text
                if stored is not None:
                    same = True
                    for k, v in r.values.items():
                        same = same and str(v) == values[k]
                    kept[day] = (
                        r
                        if same
                        else MeterReading(
                            {k: Decimal(t) for k, t in values.items()}, r.quality, r.method
                        )
                    )
            readings[m] = texts
            if stored is not None:
                stored[m] = kept
        out["readings"] = readings
        return out

    def canonical_json(self) -> bytes:
        """Canonical JSON bytes: sorted keys, no whitespace, UTF-8, decimals as strings."""
        if isinstance(self.readings, ReadingTable):
            return self._splice(self._canonical(None, with_readings=False))
        return plain_json(self.canonical())  # canonical() is plain already

    def input_hash(self) -> str:
        """SHA-256 (hex) of :meth:`canonical_json`: the run's input hash."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    # ------------------------------------------------------------------ engine inputs

    def to_engine_inputs(self) -> EngineInputs:
        """Arrays for :func:`cloud.apportion.engine.apportion` (validates first)."""
        self.validate_case()
        return build_engine_inputs(self)
