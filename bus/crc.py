"""CRC-16/CCITT-FALSE for armbus frames, computed with crcmod.

Theory of operation
-------------------
Poly 0x1021, init 0xFFFF, no reflection, xorout 0 (the ``crc-ccitt-false`` entry of crcmod's catalogue). The CRC is
appended big-endian; because the CRC has no final XOR and is not reflected, running the same CRC over a frame *with*
its CRC appended yields 0. The receiver checks a frame with one call: ``crc16(frame) == 0``.

Error detection: this polynomial is (x+1) times a primitive degree-15 polynomial, so it detects every error of up to
3 flipped bits (Hamming distance 4), all odd-bit errors, and every burst of up to 16 bits, for data words up to
32751 bits. The largest armbus frame is 265 data bytes (2120 bits) plus the CRC, far inside that range.

Two implementations of the same function:

* :func:`crc16` is crcmod's catalogued ``crc-ccitt-false``: the named, documented definition, used by the
  construct layout (:mod:`armbus.bus.layout`) and as the reference in tests. crcmod computes with a C extension when one
  was built at install time; the pure-Python fallback is about 20-50x slower. We detect which one is in use at
  import and log a warning when it is the fallback.
* :func:`crc16_fast` is the same crcmod computation without the Python wrapper that ``mkPredefinedCrcFun`` puts
  around it: the hot paths (:mod:`armbus.bus.codec`, :mod:`armbus.bus.deframer`) call crcmod's core function
  ``CRC16_CORE(data, crc, CRC16_TABLE)`` inline, with the table crcmod built for ``crc-ccitt-false``. That saves
  one Python call per frame. Both are checked against the catalogue's check value at import, and against each
  other on random data in the tests. (The standard library's ``binascii.crc_hqx`` seeded with 0xFFFF computes the
  same CRC slightly faster, but the protocol's CRC is defined as crcmod's: one implementation, one warning when
  its compiled core is missing.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import crcmod.predefined

log = logging.getLogger(__name__)

try:  # crcmod exposes its compiled core as this private module when the C extension was built
    import crcmod._crcfunext

    HAVE_C_EXTENSION = True
except ImportError:  # pragma: no cover - depends on how crcmod was installed
    HAVE_C_EXTENSION = False
    log.warning(
        "crcmod is running without its C extension: CRC computation is 20-50x slower. "
        "Reinstall it with a compiler present: pip install --force-reinstall --no-binary crcmod crcmod"
    )

#: crc16(data) -> int. CRC-16/CCITT-FALSE; check value for b"123456789" is 0x29B1.
crc16: Callable[[bytes], int] = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")

#: Initial register value of CRC-16/CCITT-FALSE.
CRC16_INIT = 0xFFFF
if crc16(b"123456789") != 0x29B1:  # pragma: no cover - a broken crcmod install
    raise ImportError("crcmod's crc-ccitt-false does not give the catalogue check value 0x29B1")

#: crcmod's core function and table behind :func:`crc16` (``mkPredefinedCrcFun`` keeps them as the wrapper's
#: default arguments): ``CRC16_CORE(data, crc, CRC16_TABLE)`` continues a running CRC from ``crc``.
CRC16_CORE: Callable[[bytes, int, bytes], int] = crc16.__defaults__[2]  # type: ignore[index]
CRC16_TABLE: bytes = crc16.__defaults__[1]  # type: ignore[index]


def crc16_fast(data: bytes, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE through crcmod's core (hot paths call ``CRC16_CORE(data, 0xFFFF, CRC16_TABLE)`` inline)."""
    return CRC16_CORE(data, crc, CRC16_TABLE)


if crc16_fast(b"123456789") != 0x29B1:  # pragma: no cover - would mean crcmod's internals changed
    raise ImportError("crcmod's core function does not compute CRC-16/CCITT-FALSE as its wrapper does")

#: Check value of CRC-16/CCITT-FALSE over b"123456789" (the catalogue's ``check``).
CHECK_VALUE = 0x29B1

#: Hamming distance of CRC-16/CCITT-FALSE for any armbus frame (<= 267 bytes).
HAMMING_DISTANCE = 4
