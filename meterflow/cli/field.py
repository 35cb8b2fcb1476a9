"""Field-engineer commands under ``meterflow edge``: decode and build frames, read a live
meter, scan a line. Their exact forms are part of the product (README, conformance)."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Annotated

import typer

from meterflow.cli.common import fail

frame_app = typer.Typer(
    help="Decode and build DL/T645 frames (no line needed).", no_args_is_help=True
)
build_app = typer.Typer(help="Build a request frame and print it as hex.", no_args_is_help=True)
frame_app.add_typer(build_app, name="build")


class Protocol(StrEnum):
    dlt645 = "dlt645"
    modbus = "modbus"


class Edition(StrEnum):
    v2007 = "2007"
    v1997 = "1997"


@frame_app.command("decode")
def frame_decode(
    hex_text: Annotated[
        str,
        typer.Argument(
            metavar="HEX", help="frame bytes in hex; spaces and any FE preamble allowed"
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    version: Annotated[
        Edition | None, typer.Option(help="edition (default: from the control code)")
    ] = None,
) -> None:
    """Explain a DL/T645 frame: edition, address (nameplate order), control, DI, value."""
    from meter_drivers.dlt645.control import Version
    from meter_drivers.dlt645.explain import explain
    from meter_drivers.errors import DriverError

    try:
        report = explain(hex_text, Version(version.value) if version else None)
    except DriverError as exc:
        raise fail(f"not a valid DL/T645 frame: {exc}") from None
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
        return
    typer.echo(
        f"DL/T645-{report.version} {report.direction}  address {report.address}  "
        f"control {report.control}" + (f"  DI {report.di}" if report.di else "")
    )
    for v in report.values:
        typer.echo(f"  {v.di or '-':8} {v.quantity:24} {v.value} {v.unit}".rstrip())
    if report.error is not None:
        typer.echo(f"  error reply 0x{report.error_code:02X}: {', '.join(report.error)}")


@build_app.command("read")
def frame_build_read(
    address: Annotated[str, typer.Option(help="meter address, nameplate order (12 digits)")],
    di: Annotated[str, typer.Option(help="data identifier, e.g. 00010000 (2007) or 9010")],
    version: Annotated[Edition, typer.Option(help="edition")] = Edition.v2007,
    no_preamble: Annotated[bool, typer.Option("--no-preamble", help="leave out 4×FE")] = False,
) -> None:
    """Print the read request for ``--address`` and ``--di`` as hex."""
    from meter_drivers.dlt645.control import Version
    from meter_drivers.dlt645.frame import encode_frame
    from meter_drivers.dlt645.requests import build_read
    from meter_drivers.errors import DriverError

    try:
        frame = build_read(address, di, Version(version.value))
    except DriverError as exc:
        raise fail(str(exc)) from None
    typer.echo(encode_frame(frame, 0 if no_preamble else 4).hex(" ").upper())


def _endpoint(tcp: str | None, serial: str | None) -> tuple[str, int] | str:
    if (tcp is None) == (serial is None):
        raise fail("give exactly one of --tcp HOST:PORT or --serial DEVICE")
    if tcp is not None:
        host, _, port = tcp.rpartition(":")
        if not host or not port.isdigit():
            raise fail(f"--tcp {tcp!r}: expected HOST:PORT")
        return host, int(port)
    assert serial is not None
    return serial


def _transport(tcp: str | None, serial: str | None, baud: int, parity: str):  # type: ignore[no-untyped-def]
    """The byte transport a DL/T645 master uses."""
    from meter_drivers.transport import SerialTransport, TcpTransport

    where = _endpoint(tcp, serial)
    if isinstance(where, tuple):
        return TcpTransport(*where)
    return SerialTransport(where, baud=baud, parity=parity.upper())  # type: ignore[arg-type]


def _modbus_master(
    tcp: str | None,
    serial: str | None,
    baud: int,
    parity: str,  # type: ignore[no-untyped-def]
    framing: str,
    timeout: float,
    retries: int = 1,
):
    from meter_drivers.modbus.links import RtuOverTcpLink, SerialLink, TcpLink
    from meter_drivers.modbus.master import ModbusMaster

    where = _endpoint(tcp, serial)
    if isinstance(where, tuple):
        link = TcpLink(*where) if framing == "tcp" else RtuOverTcpLink(*where)
    else:
        link = SerialLink(where, baudrate=baud, parity=parity.upper())
    return ModbusMaster(link, timeout_s=timeout, retries=retries)


TcpOpt = Annotated[str | None, typer.Option("--tcp", help="TCP serial server HOST:PORT")]
SerialOpt = Annotated[str | None, typer.Option("--serial", help="serial device, e.g. /dev/ttyUSB0")]
BaudOpt = Annotated[int, typer.Option(help="serial speed, bit/s")]
ParityOpt = Annotated[str, typer.Option(help="serial parity N, E or O")]
TimeoutOpt = Annotated[float, typer.Option(help="reply timeout per attempt, seconds")]
FramingOpt = Annotated[
    str,
    typer.Option(
        help="Modbus over --tcp: 'tcp' (Modbus TCP) or "
        "'rtu' (RTU through a transparent serial server)"
    ),
]


def read_command(
    protocol: Annotated[Protocol, typer.Option(help="meter protocol")],
    address: Annotated[str, typer.Option(help="DL/T645 address or Modbus unit id")],
    tcp: TcpOpt = None,
    serial: SerialOpt = None,
    baud: BaudOpt = 2400,
    parity: ParityOpt = "E",
    di: Annotated[str | None, typer.Option(help="DL/T645 data identifier")] = None,
    profile: Annotated[str | None, typer.Option(help="Modbus device profile name")] = None,
    version: Annotated[Edition, typer.Option(help="DL/T645 edition")] = Edition.v2007,
    timeout: TimeoutOpt = 1.0,
    framing: FramingOpt = "tcp",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Read a live meter once and print what it answered."""
    from meter_drivers.errors import DriverError

    try:
        if protocol is Protocol.dlt645:
            if di is None:
                raise fail("--protocol dlt645 needs --di")
            values = asyncio.run(
                _read_dlt645(
                    _transport(tcp, serial, baud, parity), address, di, version.value, timeout
                )
            )
        else:
            if profile is None:
                raise fail("--protocol modbus needs --profile")
            if not address.isdigit() or not 1 <= int(address) <= 247:
                raise fail(f"--address {address!r}: a Modbus unit id is 1..247")
            master = _modbus_master(tcp, serial, baud, parity, framing, timeout)
            values = asyncio.run(_read_modbus(master, int(address), profile))
    except DriverError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {"protocol": protocol.value, "address": address, "values": values},
                ensure_ascii=False,
            )
        )
        return
    for v in values:
        typer.echo(f"{v['quantity']:24} {v['value']} {v['unit']}".rstrip())


async def _read_dlt645(
    transport,
    address: str,
    di: str,
    version: str,  # type: ignore[no-untyped-def]
    timeout: float,
) -> list[dict[str, object]]:
    from meter_drivers.dlt645.control import Version
    from meter_drivers.dlt645.master import Dlt645Master

    master = Dlt645Master(transport, timeout_s=timeout)
    try:
        reply = await master.read(address, di, Version(version))
    finally:
        await master.close()
    return [
        {"di": r.di, "quantity": r.quantity, "value": str(r.value), "unit": r.unit}
        for r in reply.readings
    ]


async def _read_modbus(master, unit: int, profile_name: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    from meter_drivers.modbus.profile import load_builtin

    try:
        values = await master.read_fields(unit, load_builtin(profile_name))
    finally:
        await master.close()
    return [
        {"quantity": v.quantity, "value": str(v.value), "unit": v.unit} for v in values.values()
    ]


async def _scan_modbus(master, progress) -> list[int]:  # type: ignore[no-untyped-def]
    found = []
    try:
        for unit in range(1, 248):
            if await master.probe(unit):
                found.append(unit)
            progress(unit, 247, len(found))
    finally:
        await master.close()
    return found


def scan_command(
    protocol: Annotated[Protocol, typer.Option(help="meter protocol")],
    tcp: TcpOpt = None,
    serial: SerialOpt = None,
    baud: BaudOpt = 2400,
    parity: ParityOpt = "E",
    timeout: TimeoutOpt = 0.3,
    framing: FramingOpt = "tcp",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Find the meters on a line (DL/T645: by narrowing abbreviated addresses; Modbus: by
    probing unit ids 1..247), with a progress bar."""
    from meter_drivers.errors import DriverError

    with typer.progressbar(length=1, label="scanning", file=None) as bar:
        state = {"done": 0}

        def progress(sent: int, planned: int, found: int) -> None:
            bar.length = max(planned, 1)
            bar.update(sent - state["done"])
            state["done"] = sent
            bar.label = f"scanning ({found} found)"

        try:
            if protocol is Protocol.dlt645:
                found = asyncio.run(
                    _scan_dlt645(_transport(tcp, serial, baud, parity), timeout, progress)
                )
            else:
                found = asyncio.run(
                    _scan_modbus(
                        _modbus_master(tcp, serial, baud, parity, framing, timeout, retries=0),
                        progress,
                    )
                )
        except DriverError as exc:
            raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"protocol": protocol.value, "found": found}))
    else:
        typer.echo(f"{len(found)} meter(s): {', '.join(map(str, found)) or '-'}")


async def _scan_dlt645(transport, timeout: float, progress) -> list[str]:  # type: ignore[no-untyped-def]
    from meter_drivers.dlt645.master import Dlt645Master
    from meter_drivers.dlt645.scan import scan_line

    master = Dlt645Master(transport, timeout_s=timeout, retries=0)
    try:
        return await scan_line(master, timeout_s=timeout, progress=progress)
    finally:
        await master.close()
