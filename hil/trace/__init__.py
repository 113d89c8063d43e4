"""Traces: record every simulated or real link to pcapng, decode, summarise.

See docs/traces.md. ``pcapng`` writes the files, ``reader`` reads them, ``decode`` turns chunks into frames,
``stats`` computes counts and latencies. ``mcapfile`` and ``mcapexport`` write MCAP recordings (docs/recording.md;
the ``mcap`` extra).
"""

from armbus.hil.trace.pcapng import LINKTYPE_ARMBUS, TraceFileError, TraceWriter
from armbus.hil.trace.reader import Trace, read_trace

__all__ = ["LINKTYPE_ARMBUS", "Trace", "TraceFileError", "TraceWriter", "read_trace"]
