"""The armbus host: drive an arm over one serial port, synchronously or with asyncio.

:class:`controller.arm.Arm` (a reader thread at the edge) and :class:`controller.aio.AsyncArm` (asyncio over
pyserial-asyncio-fast) drive the same sans-I/O :class:`controller.host.HostNode`; :class:`controller.simarm.SimArm`
drives it against a simulated arm in simulated time. Trajectories (:mod:`controller.trajectory`,
:mod:`controller.stream`), configuration (:mod:`controller.config`), units (:mod:`controller.units`) and the
``armbus`` command (:mod:`controller.cli`) live here too.
"""
