"""pyserial URL handlers of the armbus harness (``armbus://``); see :mod:`hil.urlhandler.protocol_armbus`.

pyserial finds a handler for ``scheme://`` by importing ``<package>.protocol_<scheme>`` from every package
listed in ``serial.protocol_handler_packages``; :func:`hil.register_url_handler` adds this package there.
"""
