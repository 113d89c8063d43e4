"""Firmware-style model of a joint node: actuator physics, register table, control core and the bus node.

A virtual arm runs these modules; a firmware engineer can port them to C (one context object per core,
byte-at-a-time receive, an explicit handler table, fixed-size buffers).
"""

from __future__ import annotations

__all__ = ["actuator", "control", "handlers", "mailbox", "node", "registers"]
