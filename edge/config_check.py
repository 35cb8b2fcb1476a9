"""What a site configuration must hold beyond its fields' types for ``edge run`` to run it.

The rules work on plain data (the parsed TOML, or a model's dump), so that a file with a
wrong type in one place still has every other problem found in the same pass. Each problem
names a field path (``("lines", 0, "meters", 2, "address")``); :mod:`edge.config` turns it
into ``site.toml:23: lines[0].meters[2].address: ...``.

Rules: exactly one endpoint per line; unique line, group and meter ids; DL/T645 addresses of
12 decimal digits (no ``AA`` wildcard, not the broadcast address); Modbus unit ids 1..247;
one meter per address per line; a Modbus meter has a shipped profile; parents exist and do
not loop; a meter's groups exist; every group quantity can be read by some meter of the
group (DL/T645 catalogue of the meter's version, or the Modbus profile); no meter is left
with nothing it can read.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

#: bit/s accepted for ``baud``: the rates of DL/T645-2007's baud-rate word (600..19200),
#: 300 for old meters, and the common higher Modbus RTU rates.
STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
#: Modbus serial-line unit ids addressable one at a time (0 is broadcast, 248..255 reserved)
MODBUS_UNITS = range(1, 248)
DLT645_BROADCAST = "999999999999"
#: the polling group used when a file has no [[groups]]
DEFAULT_GROUP: Mapping[str, object] = {
    "name": "default",
    "interval_s": 60,
    "quantities": ["energy_import"],
}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing ``edge run`` could not run with: where (field path) and what."""

    loc: Loc
    message: str


@cache
def dlt645_quantities(version: str) -> frozenset[str]:
    """Quantities with a single-value data identifier in the DL/T645 catalogue (the ones the
    gateway reads); empty for an unknown version."""
    from meter_drivers.dlt645.catalogue import CATALOGUE
    from meter_drivers.dlt645.control import Version

    try:
        items = CATALOGUE[Version(version)].values()
    except ValueError:
        return frozenset()
    return frozenset(i.fields[0].quantity for i in items if len(i.fields) == 1)


@cache
def profile_quantities() -> Mapping[str, frozenset[str]]:
    """Every shipped Modbus profile's quantities, by profile name."""
    from meter_drivers.modbus.profile import builtin_profiles

    return {name: frozenset(f.quantity for f in p.fields) for name, p in builtin_profiles().items()}


def known_quantities() -> frozenset[str]:
    """Every quantity some meter could be read for: both DL/T645 catalogues and every
    shipped Modbus profile."""
    return frozenset().union(
        dlt645_quantities("2007"), dlt645_quantities("1997"), *profile_quantities().values()
    )


def _table(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[object]:
    return value if isinstance(value, list | tuple) else ()


def _address_key(protocol: object, address: object) -> tuple[object | None, str | None]:
    """(the address as compared for duplicates, or a problem with it)."""
    if isinstance(address, int) and not isinstance(address, bool):
        address = str(address)
    if not isinstance(address, str):
        return None, None  # a type error: the model reports it
    if protocol == "dlt645":
        if len(address) == 12 and address.isascii() and address.isdigit():
            if address == DLT645_BROADCAST:
                return None, (
                    f"{address} is the DL/T645 broadcast address; expected the meter's own "
                    "12-digit address from its nameplate"
                )
            return address, None
        if address.upper().count("A") and set(address.upper()) <= set("0123456789A"):
            return None, (
                f"{address!r} uses AA wildcard bytes, which address several meters; expected "
                "the meter's full 12-digit address (`meterflow edge scan` finds it)"
            )
        return None, (
            f"{address!r}: expected the 12 decimal digits of the meter's nameplate address, "
            "e.g. 000000000161"
        )
    if protocol == "modbus":
        if address.isascii() and address.isdigit() and int(address) in MODBUS_UNITS:
            return int(address), None
        return None, f"{address!r}: expected a Modbus unit id 1..247"
    return None, None  # unknown protocol: the model reports it


def _cycles(parents: dict[str, tuple[Loc, str | None]]) -> list[Problem]:
    problems, reported = [], set()
    for start in parents:
        chain, node = [start], parents[start][1]
        while node is not None and node in parents and node not in chain:
            chain.append(node)
            node = parents[node][1]
        if node == start and start not in reported:
            reported.update(chain)
            loop = " → ".join([*chain, start])
            problems.append(
                Problem((*parents[start][0], "parent"), f"the parent chain loops: {loop}")
            )
    return problems


@dataclass
class _Meter:
    loc: Loc
    id: str
    groups: list[str] | None  # None: every group
    readable: frozenset[str] | None  # None: unknown (its protocol or profile is in error)
    source: str  # "the DL/T645-2007 catalogue", "profile sdm630"


def _meter_problems(
    i: int, line: Mapping[str, object], seen_ids: dict[str, Loc], problems: list[Problem]
) -> list[_Meter]:
    protocol = line.get("protocol", "dlt645")
    by_address: dict[object, tuple[str, Loc]] = {}
    meters = []
    for j, raw in enumerate(_list(line.get("meters"))):
        meter = _table(raw)
        where: Loc = ("lines", i, "meters", j)
        meter_id = meter.get("id")
        name = meter_id if isinstance(meter_id, str) else f"lines[{i}].meters[{j}]"
        if isinstance(meter_id, str):
            if meter_id in seen_ids:
                problems.append(
                    Problem(
                        (*where, "id"),
                        f"meter id {meter_id!r} is already used at "
                        f"{format_path(seen_ids[meter_id])}; meter ids must be unique",
                    )
                )
            else:
                seen_ids[meter_id] = where
        key, trouble = _address_key(protocol, meter.get("address"))
        if trouble:
            problems.append(Problem((*where, "address"), trouble))
        elif key is not None:
            if key in by_address:
                other, other_loc = by_address[key]
                problems.append(
                    Problem(
                        (*where, "address"),
                        f"meter {other!r} ({format_path(other_loc)}) has "
                        f"address {meter.get('address')} on this line already; one meter "
                        "per address per line",
                    )
                )
            else:
                by_address[key] = (name, where)
        readable, source = _readable(protocol, meter, where, problems)
        groups = meter.get("groups")
        meters.append(
            _Meter(
                where,
                name,
                [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else None,
                readable,
                source,
            )
        )
    return meters


def _readable(
    protocol: object, meter: Mapping[str, object], where: Loc, problems: list[Problem]
) -> tuple[frozenset[str] | None, str]:
    profile = meter.get("profile")
    if protocol == "modbus":
        profiles = profile_quantities()
        if profile is None:
            problems.append(
                Problem(
                    (*where, "profile"),
                    "a Modbus meter needs a profile; expected one of "
                    f"{', '.join(sorted(profiles))}",
                )
            )
        elif isinstance(profile, str) and profile not in profiles:
            problems.append(
                Problem(
                    (*where, "profile"),
                    f"no shipped profile {profile!r}; expected one of "
                    f"{', '.join(sorted(profiles))}",
                )
            )
        elif isinstance(profile, str):
            return profiles[profile], f"profile {profile}"
        return None, ""
    if protocol == "dlt645":
        if profile is not None:
            problems.append(
                Problem(
                    (*where, "profile"),
                    "a profile is for Modbus meters; this line's "
                    'protocol is "dlt645" (the DL/T645 catalogue applies)',
                )
            )
        version = meter.get("version", "2007")
        known = dlt645_quantities(str(version))
        return (known, f"the DL/T645-{version} catalogue") if known else (None, "")
    return None, ""


def format_path(loc: Loc | tuple[object, ...]) -> str:
    """``("lines", 0, "meters", 2, "address")`` → ``lines[0].meters[2].address``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _quantity_problems(
    groups: Sequence[Mapping[str, object]], given: bool, meters: list[_Meter]
) -> list[Problem]:
    problems = []
    unreadable: set[str] = set()  # quantities reported here
    for k, group in enumerate(groups):
        name = group.get("name")
        members = [m for m in meters if m.groups is None or name in m.groups]
        for n, quantity in enumerate(_list(group.get("quantities"))):
            if not isinstance(quantity, str) or not members:
                continue
            if quantity not in known_quantities():
                close = difflib.get_close_matches(quantity, sorted(known_quantities()), n=1)
                what = (
                    f"unknown quantity {quantity!r}: not in the DL/T645 catalogue nor in any "
                    "shipped Modbus profile" + (f"; did you mean {close[0]!r}?" if close else "")
                )
            elif all(m.readable is not None for m in members) and not any(
                quantity in (m.readable or ()) for m in members
            ):
                sources = sorted({m.source for m in members})
                what = (
                    f"no meter of group {name!r} can read {quantity!r} (not in "
                    f"{' nor '.join(sources)})"
                )
            else:
                continue
            unreadable.add(quantity)
            if given:
                where: Loc = ("groups", k, "quantities", n)
                message = what
            else:
                where = ("groups",)
                message = (
                    f"there is no [[groups]], so the default group reads {quantity!r} every "
                    f"60 s: {what}; add a [[groups]] table"
                )
            problems.append(Problem(where, message))
    by_name = {g.get("name"): g for g in groups}
    for m in meters:
        if m.readable is None:
            continue
        mine = [by_name[g] for g in (m.groups if m.groups is not None else by_name) if g in by_name]
        wanted = {q for g in mine for q in _list(g.get("quantities")) if isinstance(q, str)}
        if not wanted or wanted & m.readable or wanted <= unreadable:
            continue
        has = ", ".join(sorted(m.readable)[:8]) + (", ..." if len(m.readable) > 8 else "")
        problems.append(
            Problem(
                (*m.loc, "groups") if m.groups is not None else m.loc,
                f"meter {m.id!r} would never be read: its groups ask for "
                f"{', '.join(sorted(wanted))}, none of which {m.source} has ({has})",
            )
        )
    return problems


def site_problems(data: Mapping[str, object]) -> list[Problem]:
    """Every problem of the site configuration ``data`` beyond field types and ranges (which
    the models check), in file order of the things they concern."""
    problems: list[Problem] = []
    given = data.get("groups") is not None
    groups = [_table(g) for g in _list(data.get("groups"))] if given else [DEFAULT_GROUP]
    group_at: dict[object, int] = {}
    for k, group in enumerate(groups):
        name = group.get("name")
        if isinstance(name, str) and name in group_at:
            problems.append(
                Problem(
                    ("groups", k, "name"),
                    f"group name {name!r} is already used by "
                    f"groups[{group_at[name]}]; group names must be unique",
                )
            )
        group_at.setdefault(name, k)
    line_at: dict[object, int] = {}
    seen_ids: dict[str, Loc] = {}
    meters: list[_Meter] = []
    parents: dict[str, tuple[Loc, str | None]] = {}
    for i, raw in enumerate(_list(data.get("lines"))):
        line = _table(raw)
        name = line.get("name")
        if isinstance(name, str) and name in line_at:
            problems.append(
                Problem(
                    ("lines", i, "name"),
                    f"line name {name!r} is already used by "
                    f"lines[{line_at[name]}]; line names must be unique",
                )
            )
        line_at.setdefault(name, i)
        if (line.get("tcp") is None) == (line.get("serial") is None):
            problems.append(
                Problem(
                    ("lines", i), 'give exactly one of tcp = "host:port" or serial = "/dev/..."'
                )
            )
        meters += _meter_problems(i, line, seen_ids, problems)
    ids = set(seen_ids)
    for m, raw in zip(meters, _all_meters(data), strict=True):
        parent = raw.get("parent")
        if isinstance(parent, str) and parent not in ids:
            problems.append(
                Problem(
                    (*m.loc, "parent"), f"meter {m.id!r}: parent {parent!r} is not a meter here"
                )
            )
        if m.id in seen_ids and seen_ids[m.id] == m.loc:
            parents[m.id] = (m.loc, parent if isinstance(parent, str) else None)
        unknown = sorted(set(m.groups or ()) - set(group_at))
        if unknown:
            problems.append(
                Problem(
                    (*m.loc, "groups"),
                    f"meter {m.id!r}: no group named "
                    f"{', '.join(map(repr, unknown))}; groups here: "
                    f"{', '.join(str(g) for g in group_at)}",
                )
            )
    problems += _cycles(parents)
    problems += _quantity_problems(groups, given, meters)
    return problems


def _all_meters(data: Mapping[str, object]) -> list[Mapping[str, object]]:
    return [
        _table(m) for line in _list(data.get("lines")) for m in _list(_table(line).get("meters"))
    ]
