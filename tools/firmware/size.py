"""Cross-build the joint firmware for a Cortex-M0+ and measure its flash and RAM, per module and per core.

Theory of operation
-------------------
:func:`measure` compiles every firmware source (``joints/firmware/src/*.c`` and ``gen/*.c``; not ``sil/``, the
simulator's side) with ``arm-none-eabi-gcc`` and the flags of a small part (:data:`TARGET_FLAGS`: Cortex-M0+,
Thumb, ``-Os``, one section per function and object) under the firmware's warnings as errors, plus
``joints/firmware/board/stub_m0plus.c``, a stub board that only gives the linker a ``main``, the HAL and the one
static ``fw_joint_t``. It links with ``--gc-sections`` (newlib-nano, no system calls) and reads the linker map,
so every byte in the image is charged to the object it came from after dead code is dropped: the firmware's
modules, the C runtime (soft-float double arithmetic from libgcc, ``exp``/``sqrt``/``pow`` from newlib's libm,
libc and start-up code) and the stub. Flash is text + rodata + data; RAM is data + bss.

The joint's state is one ``fw_joint_t`` (no heap, no other mutable globals), so the RAM of a core is the part
of that struct it owns: the control core its ``ctl_core_t``, the comm core the rest. A probe object gives the
target's ``sizeof`` of the struct and of its big members (:data:`PROBES`), read back with ``arm-none-eabi-nm``,
so the report says what dominates.

:data:`BUDGETS` are the targets (comm core 16 KiB flash and 4 KiB RAM, whole joint 32 KiB flash); ``python -m
armbus.tools.firmware.size`` prints the tables and exits 1 when one is missed, 2 (one line, the way out) when
the cross-compiler is not installed. ``--markdown`` prints the tables docs/porting-firmware.md embeds (a test
checks that the page is current).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from armbus.bus.errors import ExitCode, UsageError

FIRMWARE = Path(__file__).resolve().parents[2] / "joints" / "firmware"
CROSS_CC = "arm-none-eabi-gcc"
TARGET_FLAGS = ("-mcpu=cortex-m0plus", "-mthumb", "-Os", "-ffunction-sections", "-fdata-sections")
WARN_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-fast-math")
LINK_FLAGS = ("-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs")
STUB = "board/stub_m0plus.c"
#: The modules of each core (object file stems).
COMM = ("frame", "link", "router", "joint", "handlers", "cyclic", "rates", "registers", "fw_registers_gen")
CONTROL = ("control", "mailbox")
KIB = 1024
#: (what, limit in bytes) per checked quantity.
BUDGETS = {"comm core flash": 16 * KIB, "comm core RAM": 4 * KIB, "whole joint flash": 32 * KIB}
#: sizeof expressions measured on the target: (label, C expression).
PROBES = (
    ("fw_joint_t (one joint)", "sizeof(fw_joint_t)"),
    ("ctl_core_t (control core)", "sizeof(ctl_core_t)"),
    ("2 x fw_link_t", "sizeof(((fw_joint_t *)0)->links)"),
    ("  per link: packet slots (queue, urgent queue, in flight, one failed)", "sizeof(((fw_link_t *)0)->pkts)"),
    ("  per link: tx byte buffer", "sizeof(((fw_link_t *)0)->out)"),
    ("  per link: deframer", "sizeof(((fw_link_t *)0)->deframer)"),
    ("  per link: frame scratch (the received packet)", "sizeof(((fw_link_t *)0)->scratch)"),
    ("  per link: events (small records)", "sizeof(((fw_link_t *)0)->events)"),
    ("fw_router_t", "sizeof(fw_router_t)"),
    ("  router: report backlog", "sizeof(((fw_router_t *)0)->backlog)"),
    ("  router: items for the joint (references)", "sizeof(((fw_router_t *)0)->items)"),
    ("packets held by the node (held ENUMERATE, scratch)", "2 * sizeof(fw_packet_t)"),
    ("fw_regs_t", "sizeof(fw_regs_t)"),
    ("fw_packet_t", "sizeof(fw_packet_t)"),
)
_TEXT_SECTIONS = (".text", ".rodata", ".init", ".fini", ".ARM.extab", ".ARM.exidx", ".eh_frame")
# writable, initialised from flash: counted as data (as arm-none-eabi-size does)
_DATA_SECTIONS = (".data", ".tdata", ".init_array", ".fini_array", ".preinit_array", ".ctors", ".dtors", ".jcr")
_INPUT = re.compile(r"^\s+(?:(\.\S+|COMMON|\*fill\*)\s+)?0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*?))?\s*$")


@dataclass
class Module:
    """Bytes of one object (or library group) in the linked image."""

    name: str
    core: str
    text: int = 0  # code and read-only data
    data: int = 0  # initialised RAM (also in flash)
    bss: int = 0

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


@dataclass
class SizeReport:
    modules: list[Module]
    probes: dict[str, int]
    cores: dict[str, dict[str, int]] = field(default_factory=dict)
    compiler: str = ""  # the cross-compiler's version line
    image: tuple[int, int, int] = (0, 0, 0)  # arm-none-eabi-size of the linked image: text, data, bss
    checks: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # what -> (measured, limit, ok)

    @property
    def ok(self) -> bool:
        return all(ok for _, _, ok in self.checks.values())


def _group(obj: str) -> tuple[str, str]:
    """(module name, core) of an input file of the link map."""
    if obj == "*fill*":
        return "alignment padding", "runtime"
    lib = re.search(r"lib(\w+)\.a\(", obj)
    if lib:
        name = {"gcc": "libgcc (soft-float double, division)", "m": "libm (exp, sqrt, pow...)",
                "c_nano": "libc (newlib-nano)", "c": "libc", "nosys": "libnosys"}.get(lib.group(1), lib.group(0))
        return name, "runtime"
    stem = Path(obj).stem
    if stem in COMM:
        return stem, "comm"
    if stem in CONTROL:
        return stem, "control"
    if stem == Path(STUB).stem:
        return stem, "board stub"
    return "start-up (crt)", "runtime"


def parse_map(text: str) -> dict[str, Module]:
    """Allocated bytes per input object, from a GNU ld map file (after --gc-sections)."""
    modules: dict[str, Module] = {}
    lines = text.split("\n")
    try:
        start = next(k for k, line in enumerate(lines) if line.startswith("Linker script and memory map"))
    except StopIteration:
        raise ValueError("not a GNU ld map file (no memory map)") from None
    out_section, pending = "", ""
    for line in lines[start:]:
        if line and not line.startswith(" "):
            out_section = line.split()[0]
            continue
        m = _INPUT.match(line)
        if m is None:
            stripped = line.strip()
            pending = stripped if stripped.startswith(".") and len(stripped.split()) == 1 else ""
            continue
        section = m.group(1) or pending
        pending = ""
        size, obj = int(m.group(3), 16), (m.group(4) or "").strip()
        if section == "*fill*":
            obj = "*fill*"
        if size == 0 or not section or not obj or obj.startswith("0x"):
            continue
        kind = "data" if out_section in _DATA_SECTIONS else \
            "bss" if out_section in (".bss", ".tbss", "COMMON") else \
            "text" if out_section in _TEXT_SECTIONS else None
        if kind is None:
            continue
        name, core = _group(obj)
        mod = modules.setdefault(name, Module(name, core))
        setattr(mod, kind, getattr(mod, kind) + size)
    return modules


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UsageError(f"cross-build failed: {' '.join(cmd[:1])}: "
                         f"{(proc.stderr.strip().splitlines() or ['(no output)'])[0]}")


def _probe_sizes(cc: str, work: Path, includes: list[str]) -> dict[str, int]:
    src = work / "probe.c"
    body = ["#include \"fw_joint.h\""]
    body += [f"char fw_probe_{k}[{expr}];" for k, (_, expr) in enumerate(PROBES)]
    src.write_text("\n".join(body) + "\n")
    obj = work / "probe.o"
    _run([cc, *TARGET_FLAGS, *WARN_FLAGS, "-fno-common", *includes, "-c", str(src), "-o", str(obj)])
    nm = subprocess.run([cc.replace("gcc", "nm"), "-S", str(obj)], capture_output=True, text=True, check=True)
    sizes: dict[str, int] = {}
    for line in nm.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith("fw_probe_"):
            sizes[PROBES[int(parts[3][len("fw_probe_"):])][0]] = int(parts[1], 16)
    return {label: sizes[label] for label, _ in PROBES if label in sizes}  # in the order of PROBES


def cross_compiler() -> str:
    """The cross-compiler's path, or UsageError naming the packages to install."""
    cc = shutil.which(CROSS_CC)
    if cc is None:
        raise UsageError(f"{CROSS_CC} is not installed: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                         "to cross-build the firmware for Cortex-M")
    return cc


def measure(root: Path = FIRMWARE) -> SizeReport:
    """Cross-build the firmware and the stub board, link, and account every byte (see the module docstring)."""
    cc = cross_compiler()
    includes = [f"-I{root / 'include'}", f"-I{root / 'gen'}"]
    sources = [*sorted([*root.glob("src/*.c"), *root.glob("gen/*.c")]), root / STUB]
    with tempfile.TemporaryDirectory(prefix="armbus-fwsize-") as tmp:
        work = Path(tmp)
        objs = []
        for src in sources:
            obj = work / f"{src.stem}.o"
            _run([cc, *TARGET_FLAGS, *WARN_FLAGS, *includes, "-c", str(src), "-o", str(obj)])
            objs.append(str(obj))
        elf, mapfile = work / "joint.elf", work / "joint.map"
        _run([cc, *TARGET_FLAGS, *LINK_FLAGS, f"-Wl,-Map={mapfile}", "-o", str(elf), *objs, "-lm"])
        modules = parse_map(mapfile.read_text())
        probes = _probe_sizes(cc, work, includes)
        size = subprocess.run([cc.replace("gcc", "size"), "-B", str(elf)], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
    report = _account(modules, probes)
    report.image = (int(size[0]), int(size[1]), int(size[2]))
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    report.compiler = (version.splitlines() or ["?"])[0].strip()
    return report


def _account(modules: dict[str, Module], probes: dict[str, int]) -> SizeReport:
    joint, control = probes["fw_joint_t (one joint)"], probes["ctl_core_t (control core)"]
    stub = modules.get(Path(STUB).stem)
    if stub is not None:  # the one fw_joint_t lives in the stub's bss: charge it to the cores that own it
        stub.bss -= joint
    order = {"comm": 0, "control": 1, "runtime": 2, "board stub": 3}
    mods = sorted(modules.values(), key=lambda m: (order.get(m.core, 9), -m.flash, m.name))
    cores: dict[str, dict[str, int]] = {}
    for core in order:
        members = [m for m in mods if m.core == core]
        cores[core] = {"flash": sum(m.flash for m in members), "ram": sum(m.ram for m in members)}
    cores["comm"]["ram"] += joint - control
    cores["control"]["ram"] += control
    total_flash = sum(m.flash for m in mods)
    cores["whole joint"] = {"flash": total_flash, "ram": sum(m.ram for m in mods) + joint}
    measured = {"comm core flash": cores["comm"]["flash"], "comm core RAM": cores["comm"]["ram"],
                "whole joint flash": total_flash}
    checks = {what: (measured[what], limit, measured[what] <= limit) for what, limit in BUDGETS.items()}
    return SizeReport(mods, probes, cores=cores, checks=checks)


def markdown(report: SizeReport) -> str:
    """The tables of docs/porting-firmware.md: per module, per core with the budgets, the RAM breakdown."""
    out = [f"Measured with `{report.compiler}`, flags `{' '.join(TARGET_FLAGS)}`, linked with "
           f"`{' '.join(LINK_FLAGS)}` (the stub board of `joints/firmware/{STUB}`).", "",
           "| module | core | flash (text+rodata+data) | RAM (data+bss) |", "|---|---|---:|---:|"]
    out += [f"| {m.name} | {m.core} | {m.flash} | {m.ram} |" for m in report.modules]
    out += ["", "| core | flash | RAM | budget | verdict |", "|---|---:|---:|---|---|"]
    verdicts = {"comm": ("comm core flash", "comm core RAM"), "whole joint": ("whole joint flash",)}
    for core, fig in report.cores.items():
        checks = [report.checks[w] for w in verdicts.get(core, ())]
        budget = ", ".join(f"{w.split()[-1]} <= {lim // KIB} KiB" for w, (_, lim, _) in
                           zip(verdicts.get(core, ()), checks, strict=True)) or "-"
        verdict = ", ".join("met" if ok else f"MISSED by {val - lim} B" for val, lim, ok in checks) or "-"
        ram = f"{fig['ram']}" + (" (incl. its part of fw_joint_t)" if core in ("comm", "control") else "")
        out.append(f"| {core} | {fig['flash']} | {ram} | {budget} | {verdict} |")
    out += ["", "| RAM of one joint (sizeof on the target) | bytes |", "|---|---:|"]
    out += [f"| {label} | {size} |" for label, size in report.probes.items()]
    return "\n".join(out)


DOC = FIRMWARE.parents[1] / "docs" / "porting-firmware.md"
BEGIN, END = "<!-- BEGIN GENERATED: firmware-size -->", "<!-- END GENERATED: firmware-size -->"


def doc_block(page: str) -> str:
    """The generated block of docs/porting-firmware.md (between the markers, stripped)."""
    try:
        return page.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    except IndexError:
        raise UsageError(f"{DOC} has no {BEGIN} ... {END} block") from None


def write_doc(report: SizeReport, doc: Path = DOC) -> None:
    page = doc.read_text(encoding="utf-8")
    doc_block(page)  # the markers are there
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{markdown(report)}\n{END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.firmware.size", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--markdown", action="store_true", help="print the tables of docs/porting-firmware.md")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the tables in docs/porting-firmware.md")
    args = ap.parse_args(argv)
    try:
        report = measure()
    except UsageError as exc:
        print(f"firmware size: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    if args.write_docs:
        write_doc(report)
    if args.json:
        print(json.dumps({"modules": [asdict(m) | {"flash": m.flash, "ram": m.ram} for m in report.modules],
                          "probes": report.probes, "cores": report.cores,
                          "checks": {k: {"measured": v, "limit": lim, "ok": ok}
                                     for k, (v, lim, ok) in report.checks.items()}}, indent=2))
    else:
        print(markdown(report))
        if not args.markdown:
            print(f"image (arm-none-eabi-size): text {report.image[0]}, data {report.image[1]}, "
                  f"bss {report.image[2]}")
    if not args.json and not args.markdown:
        for what, (value, limit, ok) in report.checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {what}: {value} B of {limit} B ({value / KIB:.1f} of "
                  f"{limit // KIB} KiB)")
    return int(ExitCode.OK if report.ok else ExitCode.FAILED)


if __name__ == "__main__":
    sys.exit(main())
