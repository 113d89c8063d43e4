"""CRC-16/CCITT-FALSE for armbus frames, computed with crcmod.

Theory of operation
-------------------
Poly 0x1021, init 0xFFFF, no reflection, xorout 0 (the ``crc-ccitt-false`` entry of crcmod's catalogue). The CRC is
appended big-endian; because the CRC has no final XOR and is not reflected, running the same CRC over a frame *with*
its CRC appended yields 0. The receiver checks a frame with one call: ``crc16(frame) == 0``.

Error detection: this polynomial is (x+1) times a primitive degree-15 polynomial, so it detects every error of up to
3 flipped bits (Hamming distance 4), all odd-bit errors, and every burst of up to 16 bits, for data words up to
32751 bits. The largest armbus frame is 265 data bytes (2120 bits) plus the CRC, far inside that range.

crcmod computes with a C extension when one was built at install time; the pure-Python fallback is about 20-50x
slower. We detect which one is in use at import and log a warning when it is the fallback.
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

# Hot paths call crcmod's compiled core directly with the same table, saving the Python wrapper call:
#: ``CRC16_CORE(data, CRC16_INIT, CRC16_TABLE) == crc16(data)`` (checked below at import).
CRC16_CORE, CRC16_TABLE = crc16.__defaults__[2], crc16.__defaults__[1]  # type: ignore[index]
CRC16_INIT = 0xFFFF
if CRC16_CORE(b"123456789", CRC16_INIT, CRC16_TABLE) != 0x29B1:  # pragma: no cover - a crcmod internals change
    raise ImportError("crcmod internals changed: the CRC-16 fast path does not match crc16()")

#: Hamming distance of CRC-16/CCITT-FALSE for any armbus frame (<= 267 bytes).
HAMMING_DISTANCE = 4
