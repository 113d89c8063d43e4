"""The armbus hardware-in-the-loop harness: simulated time, virtual arms, real-time drivers, fault injection, traces.

Theory of operation
-------------------
The simulation kernel (:mod:`armbus.hil.kernel`, :mod:`armbus.hil.wire`, :mod:`armbus.hil.faults`,
:mod:`armbus.hil.schedule`, with the fault kinds of :mod:`armbus.hil.scheduled_fault`, :mod:`armbus.hil.link_faults`,
:mod:`armbus.hil.joint_faults` and their table :mod:`armbus.hil.fault_kinds`) runs sans-I/O nodes joined by timed,
fault-injected links; :mod:`armbus.hil.virtual_arm` builds an arm of joint models on it, optionally behind a
USB-serial adapter model (:mod:`armbus.hil.adapter`), :mod:`armbus.hil.simdrive` and :mod:`armbus.hil.simarm`
drive a host against it in simulated time. The real-time drivers
(:mod:`armbus.hil.realtime`, :mod:`armbus.hil.ptyserver`, :mod:`armbus.hil.urlhandler`) put a virtual arm behind a
pseudo-terminal or a pyserial port; :mod:`armbus.hil.probe` is a minimal blocking host for them. The pytest plugin
(:mod:`armbus.hil.pytest_plugin`) and the traces (:mod:`armbus.hil.trace`) complete the kit.

Importing this package registers nothing: ``armbus://`` URLs (and the shorthand ``virtual``) are served through the
controller's table of port backends (:mod:`armbus.controller.backends`) when one is opened.
"""
