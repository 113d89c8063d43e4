"""armbus: drive robot arms whose joints sit on one serial bus.

Theory of operation
-------------------
This package is the one import name the distribution installs. Its subpackages are the layers of the design,
each importing only the ones listed before it (``tests/test_layers.py`` and ``make lint`` hold them to it):

* :mod:`armbus.bus`: the wire protocol and the hop link (sans-I/O): bytes -> frame -> hop link -> routing;
* :mod:`armbus.joints`: the joint firmware model (comm core, handlers, registers, control core, actuator);
* :mod:`armbus.controller`: the host: the sans-I/O host node, :class:`Arm` (threads) and :class:`AsyncArm`
  (asyncio), configuration, units, trajectories, serial ports and the table of port backends;
* :mod:`armbus.hil`: the simulation kernel, virtual arms (simulated time and real time behind a pty), fault
  injection, the pytest plugin and traces;
* :mod:`armbus.tools`: everything built on top: the ``armbus`` command, the demo, benchmarks, campaigns and
  generators. Nothing below imports it.

This module exports the everyday API (:data:`__all__`); everything else is imported from its subpackage. The
exports are resolved on first use (PEP 562), so that importing one layer, ``armbus.bus.codec`` say, does not load
the host, asyncio and pyserial with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from armbus.bus.errors import (
        ArmbusError,
        ArmTimeoutError,
        ConfigError,
        DecodeError,
        EncodeError,
        LeaseError,
        PeerError,
        PortError,
        RemoteError,
        TraceError,
        UndeliverableError,
        UsageError,
    )
    from armbus.controller.aio import AsyncArm
    from armbus.controller.arm import Arm
    from armbus.controller.config import ArmConfig, JointConfig, load_config
    from armbus.controller.cyclic import CycleState, CycleView, CyclicReport
    from armbus.controller.events import (
        CommandRefused,
        CycleMissed,
        CycleReplied,
        FaultReported,
        HostEvent,
        JointState,
        LinkEvent,
        PacketAcked,
        PortLost,
        PortRestored,
        ReplyReceived,
        RequestFailed,
        RequestTimedOut,
        SendFailed,
        StrayMessage,
        UndeliverableReported,
    )
    from armbus.controller.units import (
        Dimension,
        parse_angle,
        parse_current,
        parse_quantity,
        parse_velocity,
    )

__version__ = "0.1.0"

#: Where each export lives: name -> module.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ("ArmbusError", "ArmTimeoutError", "ConfigError", "DecodeError", "EncodeError", "LeaseError", "PeerError",
         "PortError",
         "RemoteError", "TraceError", "UndeliverableError", "UsageError"), "armbus.bus.errors"),
    "Arm": "armbus.controller.arm",
    "AsyncArm": "armbus.controller.aio",
    **dict.fromkeys(("ArmConfig", "JointConfig", "load_config"), "armbus.controller.config"),
    **dict.fromkeys(("CycleState", "CycleView", "CyclicReport"), "armbus.controller.cyclic"),
    **dict.fromkeys(
        ("CommandRefused", "CycleMissed", "CycleReplied", "FaultReported", "HostEvent", "JointState", "LinkEvent",
         "PacketAcked", "PortLost",
         "PortRestored", "ReplyReceived", "RequestFailed", "RequestTimedOut", "SendFailed", "StrayMessage",
         "UndeliverableReported"), "armbus.controller.events"),
    **dict.fromkeys(("Dimension", "parse_angle", "parse_current", "parse_quantity", "parse_velocity"),
                    "armbus.controller.units"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'armbus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


#: The everyday API; a test checks that it names exactly the exports above.
__all__ = [
    "Arm",
    "ArmConfig",
    "ArmTimeoutError",
    "ArmbusError",
    "AsyncArm",
    "CommandRefused",
    "ConfigError",
    "CycleMissed",
    "CycleReplied",
    "CycleState",
    "CycleView",
    "CyclicReport",
    "DecodeError",
    "Dimension",
    "EncodeError",
    "FaultReported",
    "HostEvent",
    "JointConfig",
    "JointState",
    "LeaseError",
    "LinkEvent",
    "PacketAcked",
    "PeerError",
    "PortError",
    "PortLost",
    "PortRestored",
    "RemoteError",
    "ReplyReceived",
    "RequestFailed",
    "RequestTimedOut",
    "SendFailed",
    "StrayMessage",
    "TraceError",
    "UndeliverableError",
    "UndeliverableReported",
    "UsageError",
    "__version__",
    "load_config",
    "parse_angle",
    "parse_current",
    "parse_quantity",
    "parse_velocity",
]
