"""The armbus host: drive an arm over one serial port, synchronously or with asyncio.

:class:`armbus.controller.arm.Arm` (a reader thread at the edge) and :class:`armbus.controller.aio.AsyncArm` (asyncio
over pyserial-asyncio-fast) drive the same sans-I/O :class:`armbus.controller.host.HostNode`;
:class:`armbus.hil.simarm.SimArm` drives it against a simulated arm in simulated time. Trajectories
(:mod:`armbus.controller.trajectory`, :mod:`armbus.controller.stream`), configuration (:mod:`armbus.controller.config`),
units (:mod:`armbus.controller.units`) and the
``armbus`` command (:mod:`armbus.tools.cli`) live here too.
"""
