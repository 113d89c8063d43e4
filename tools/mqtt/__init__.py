"""The MQTT bridge: an arm's telemetry, faults and commands on an MQTT broker (docs/lab.md).

:mod:`~armbus.tools.mqtt.schema` holds the versioned topic tree and the JSON Schema of every message,
:mod:`~armbus.tools.mqtt.core` the sans-I/O bridge (rate limits, bounded buffers, the lease book, commands),
:mod:`~armbus.tools.mqtt.bridge` the driver (paho-mqtt, threads, the arm), :mod:`~armbus.tools.mqtt.broker` a
Mosquitto launcher for tests, benchmarks and a lab bench.
"""
