"""The armbus host: drive an arm over one serial port, synchronously or with asyncio.

Theory of operation
-------------------
The protocol runs in one sans-I/O :class:`armbus.controller.host.HostNode` (message ids and correlation in
:mod:`armbus.controller.correlator`, events in :mod:`armbus.controller.events`, operations as message builders in
:mod:`armbus.controller.ops`). Drivers at the edge run it: :class:`armbus.controller.arm.Arm` with a reader thread
(:mod:`armbus.controller.runner`), :class:`armbus.controller.aio.AsyncArm` with asyncio over pyserial-asyncio-fast;
both hand events to waiters and listeners through :mod:`armbus.controller.fanout`. Ports are opened by name
through the table of backends (:mod:`armbus.controller.backends`: a device, a pyserial URL, or ``virtual`` /
``armbus://`` for a virtual arm, imported only when asked for) and discovered by :mod:`armbus.controller.ports`.
Configuration (:mod:`armbus.controller.config`), units (:mod:`armbus.controller.units`), trajectories and their
streaming (:mod:`armbus.controller.trajectory`, :mod:`armbus.controller.stream`, :mod:`armbus.controller.scheduler`)
complete the host. The everyday names are exported by :mod:`armbus` itself; the simulated-time driver is
:class:`armbus.hil.simarm.SimArm` and the ``armbus`` command :mod:`armbus.tools.cli`, both in layers above.
"""
