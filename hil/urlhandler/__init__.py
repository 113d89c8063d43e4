"""pyserial URL handlers of the armbus harness (``armbus://``); see :mod:`armbus.hil.urlhandler.protocol_armbus`.

pyserial finds a handler for ``scheme://`` by importing ``<package>.protocol_<scheme>`` from every package
listed in ``serial.protocol_handler_packages``; :func:`armbus.controller.backends.resolve_port` adds this package there
when an ``armbus://`` URL is first opened (its table of backends names it).
"""
