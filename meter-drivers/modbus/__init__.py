"""Modbus meters: register codec, device profiles, request planner and the line master.

The codec and the planner are pure (registers and fields in, values and reads out), so the
gateway, the simulators, the bench and field tools share them; the master joins them to a
pymodbus 3.16 client on a Modbus TCP, RTU-over-TCP or serial RTU line.
"""

from ..errors import (
    DriverError,
    InvalidValueError,
    ModbusError,
    ModbusExceptionReply,
    ProfileError,
    ReadTimeout,
)
from .codec import (
    ORDER_FAMILIES,
    ORDERS_32,
    ORDERS_64,
    DataType,
    bytes_to_registers,
    decode_raw,
    decode_value,
    encode_raw,
    encode_value,
    order_family,
    order_for,
    registers_to_bytes,
    shortest_decimal,
)
from .links import ModbusLink, RtuOverTcpLink, SerialLink, TcpLink
from .master import DeviceSettings, FieldValue, ModbusMaster
from .planner import RegisterRead, minimum_read_count, plan_reads
from .profile import (
    HOLDING,
    INPUT,
    MAX_REGISTERS_PER_READ,
    DeviceProfile,
    Field,
    Manual,
    builtin_profile_paths,
    builtin_profiles,
    load_builtin,
    load_profile,
    parse_profile,
)

__all__ = [
    "HOLDING",
    "INPUT",
    "MAX_REGISTERS_PER_READ",
    "ORDERS_32",
    "ORDERS_64",
    "ORDER_FAMILIES",
    "DataType",
    "DeviceProfile",
    "DeviceSettings",
    "DriverError",
    "Field",
    "FieldValue",
    "InvalidValueError",
    "Manual",
    "ModbusError",
    "ModbusExceptionReply",
    "ModbusLink",
    "ModbusMaster",
    "ProfileError",
    "ReadTimeout",
    "RegisterRead",
    "RtuOverTcpLink",
    "SerialLink",
    "TcpLink",
    "builtin_profile_paths",
    "builtin_profiles",
    "bytes_to_registers",
    "decode_raw",
    "decode_value",
    "encode_raw",
    "encode_value",
    "load_builtin",
    "load_profile",
    "minimum_read_count",
    "order_family",
    "order_for",
    "parse_profile",
    "plan_reads",
    "registers_to_bytes",
    "shortest_decimal",
]
