"""The pyserial URL handler of ``serve://PATH`` (a client of ``armbus serve``); see
:mod:`armbus.controller.serveurl.protocol_serve`. :func:`armbus.controller.backends.resolve_port` adds this package to
``serial.protocol_handler_packages`` when a ``serve://`` URL is first opened (its table of backends names it).
"""
