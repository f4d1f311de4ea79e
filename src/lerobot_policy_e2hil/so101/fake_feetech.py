"""A byte-level simulation of a chain of Feetech STS3215 servos, for running SO101 code without hardware.

LeRobot's :class:`~lerobot.motors.feetech.FeetechMotorsBus` talks to the servos through the Feetech
SDK (``scservo_sdk``): the SDK's ``PortHandler`` owns a ``serial.Serial`` object and its packet
handlers write instruction packets to it and parse the status packets that come back. The only
thing replaced here is that serial object: :class:`SimulatedServoChain` answers PING, READ, WRITE,
SYNC_READ and SYNC_WRITE instruction packets from an in-memory control table per servo, so the SDK's
packet layer, LeRobot's bus (encoding, calibration, normalisation, retries) and the SO follower /
leader classes above it all run unchanged.

Servo model: writing ``Goal_Position`` while torque is enabled moves ``Present_Position`` to the goal
(clamped to the position limits) at once; an external hand (the test, or the simulated operator of
a leader arm) can set ``Present_Position`` through :meth:`SimulatedServoChain.set_present_position`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from lerobot.motors.feetech.tables import MODEL_CONTROL_TABLE, MODEL_NUMBER_TABLE

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83
BROADCAST_ID = 0xFE

_MODEL = "sts3215"
_TABLE = MODEL_CONTROL_TABLE[_MODEL]
_FIRMWARE = (3, 10)


def _checksum(body: Iterable[int]) -> int:
    return (~sum(body)) & 0xFF


def status_packet(servo_id: int, params: bytes = b"", error: int = 0) -> bytes:
    """Build a Feetech (protocol 0) status packet.

    Args:
        servo_id: Id of the answering servo.
        params: Payload bytes (read data), possibly empty.
        error: Servo error byte.

    Returns:
        ``FF FF id len error params... checksum``.
    """
    body = bytes([servo_id, len(params) + 2, error]) + params
    return b"\xff\xff" + body + bytes([_checksum(body)])


class SimulatedServo:
    """Control table and motion of one simulated STS3215 servo.

    Args:
        servo_id: Bus id (1..252).
        position: Initial ``Present_Position`` in raw encoder ticks (0..4095).
        range_min: Initial ``Min_Position_Limit``.
        range_max: Initial ``Max_Position_Limit``.
    """

    def __init__(self, servo_id: int, position: int = 2048, range_min: int = 0, range_max: int = 4095):
        self.memory = bytearray(256)
        self._put("Firmware_Major_Version", _FIRMWARE[0])
        self._put("Firmware_Minor_Version", _FIRMWARE[1])
        self._put("Model_Number", MODEL_NUMBER_TABLE[_MODEL])
        self._put("ID", servo_id)
        self._put("Min_Position_Limit", range_min)
        self._put("Max_Position_Limit", range_max)
        self._put("Present_Position", position)
        self._put("Goal_Position", position)
        self.goal_writes = 0

    @property
    def servo_id(self) -> int:
        """The id stored in the servo's control table."""
        return self._get("ID")

    def _put(self, name: str, value: int) -> None:
        addr, length = _TABLE[name]
        self.memory[addr : addr + length] = int(value).to_bytes(length, "little")

    def _get(self, name: str) -> int:
        addr, length = _TABLE[name]
        return int.from_bytes(self.memory[addr : addr + length], "little")

    @property
    def present_position(self) -> int:
        """``Present_Position`` in raw ticks."""
        return self._get("Present_Position")

    def set_present_position(self, ticks: int) -> None:
        """Move the horn by hand (torque is ignored: the hand wins)."""
        self._put("Present_Position", max(0, min(4095, int(ticks))))

    def read(self, addr: int, length: int) -> bytes:
        """Read ``length`` bytes of the control table from ``addr``."""
        return bytes(self.memory[addr : addr + length])

    def write(self, addr: int, data: bytes) -> None:
        """Write bytes into the control table and apply the servo's reaction to them."""
        self.memory[addr : addr + len(data)] = data
        goal_addr, goal_len = _TABLE["Goal_Position"]
        if addr <= goal_addr < addr + len(data) and self._get("Torque_Enable"):
            self.goal_writes += 1
            goal = self._get("Goal_Position") & 0x7FFF
            lo, hi = self._get("Min_Position_Limit"), self._get("Max_Position_Limit")
            if lo < hi:
                goal = max(lo, min(hi, goal))
            self._put("Present_Position", goal)


class SimulatedServoChain:
    """A duck-typed ``serial.Serial`` with simulated servos on the other end of the wire.

    Implements the subset of the pyserial API that ``scservo_sdk.PortHandler`` uses: ``write``,
    ``read``, ``in_waiting``, ``reset_input_buffer``, ``flush`` and ``close``.

    Args:
        servos: The servos on the bus, keyed by id.
    """

    def __init__(self, servos: dict[int, SimulatedServo]):
        self.servos = servos
        self.is_open = True
        self._rx = bytearray()
        self._lock = threading.Lock()
        self.packets_received = 0

    # -- pyserial surface -------------------------------------------------------------------
    def write(self, packet) -> int:
        """Receive an instruction packet from the host and queue the servos' answers."""
        data = bytes(packet)
        with self._lock:
            self.packets_received += 1
            self._rx += self._handle(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Return up to ``size`` queued bytes (never blocks, like ``timeout=0``)."""
        with self._lock:
            out = bytes(self._rx[:size])
            del self._rx[:size]
        return out

    @property
    def in_waiting(self) -> int:
        """Number of queued bytes."""
        return len(self._rx)

    def reset_input_buffer(self) -> None:
        """Drop queued bytes."""
        with self._lock:
            self._rx.clear()

    def flush(self) -> None:
        """Nothing is buffered on the way out."""

    def close(self) -> None:
        """Mark the port closed."""
        self.is_open = False

    # -- protocol ---------------------------------------------------------------------------
    def _handle(self, data: bytes) -> bytes:
        if len(data) < 6 or data[0] != 0xFF or data[1] != 0xFF:
            return b""
        servo_id, length, inst = data[2], data[3], data[4]
        if len(data) < length + 4 or data[length + 3] != _checksum(data[2 : length + 3]):
            return b""  # a corrupted instruction is ignored by real servos
        params = data[5 : length + 3]
        if inst == INST_PING:
            ids = sorted(self.servos) if servo_id == BROADCAST_ID else [servo_id]
            return b"".join(status_packet(i) for i in ids if i in self.servos)
        if inst == INST_READ:
            servo = self.servos.get(servo_id)
            return b"" if servo is None else status_packet(servo_id, servo.read(params[0], params[1]))
        if inst == INST_WRITE:
            servo = self.servos.get(servo_id)
            if servo is None:
                return b""
            servo.write(params[0], params[1:])
            return b"" if servo_id == BROADCAST_ID else status_packet(servo_id)
        if inst == INST_SYNC_READ:
            addr, size = params[0], params[1]
            return b"".join(
                status_packet(i, self.servos[i].read(addr, size)) for i in params[2:] if i in self.servos
            )
        if inst == INST_SYNC_WRITE:
            addr, size = params[0], params[1]
            body = params[2:]
            for start in range(0, len(body), size + 1):
                servo = self.servos.get(body[start])
                if servo is not None:
                    servo.write(addr, body[start + 1 : start + 1 + size])
            return b""
        return status_packet(servo_id, error=0x08) if servo_id in self.servos else b""
