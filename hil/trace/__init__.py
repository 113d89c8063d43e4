"""Traces: record every simulated or real link to pcapng, decode, summarise, replay.

See docs/traces.md. ``pcapng`` writes and reads the files, ``decode`` turns chunks into frames, ``stats``
computes counts and latencies.
"""

from hil.trace.pcapng import LINKTYPE_ARMBUS, Trace, TraceFileError, TraceWriter, read_trace

__all__ = ["LINKTYPE_ARMBUS", "Trace", "TraceFileError", "TraceWriter", "read_trace"]
