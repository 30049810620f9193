#!/usr/bin/env python3
"""Write a fleet of snapshot files made from real recordings, for the fleet benchmark.

Usage: ``python benches/make_fleet.py DIR [--hosts N] [--seed S]`` (DIR must be empty or new).

Each host is a whole ``kvmprobe snapshot --vm`` document (the ``pvm-6.18`` recording of the
development machine: its capabilities, host facts and CPU section), whose CPU is one of six real
CPUs: that recording's, or one of the five Firecracker fingerprints in
tests/data/firecracker/fingerprints (Cascade Lake, Ice Lake, Sapphire Rapids, Milan, Genoa).
Hosts vary as fleets do: up to two of a CPU's features cleared (chosen from a short list per CPU,
so the classes stay a few dozen), the APIC IDs of the CPU that answered, the TSC rate by a few
kHz. A seeded random generator makes the same fleet every time. Nothing is committed: the
benchmark writes into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "tests", ROOT / "src"):
    if str(extra) not in sys.path:
        sys.path.append(str(extra))

from _fingerprints import FINGERPRINTS, fingerprint_record, name_of  # noqa: E402

from kvmprobe._cpu_decode import decode  # noqa: E402
from kvmprobe._cpu_record import CpuRecord  # noqa: E402
from kvmprobe._cpuid import lookup  # noqa: E402
from kvmprobe.presets import load_preset  # noqa: E402
from kvmprobe.snapshot import snapshot_document  # noqa: E402

# Features fleets of one CPU differ in (BIOS settings, microcode, kernel parameters): the ones a
# host of the fleet may lack. Each host drops up to two of its CPU's list.
VARY = ("avx512f", "avx512_vnni", "rtm", "hle", "pku", "gfni", "clwb", "rdpid", "umip", "clflushopt", "clzero",
        "tsc_adjust", "wbnoinvd", "kvm_pv_unhalt")  # fmt: skip


def _without(record: CpuRecord, names: Sequence[str]) -> CpuRecord:
    rows = []
    for entry in record.cpuid or ():
        for name in names:
            row = lookup(name)
            if entry.leaf == row.leaf and entry.subleaf == (row.subleaf or 0):
                entry = entry._replace(**{row.register: getattr(entry, row.register) & ~(1 << row.bit)})
        rows.append(entry)
    return record._replace(cpuid=tuple(rows))


def _apic(record: CpuRecord, apic: int, tsc_khz: int) -> CpuRecord:
    rows = []
    for entry in record.cpuid or ():
        if entry.leaf == 1:
            entry = entry._replace(ebx=(entry.ebx & 0x00FFFFFF) | (apic & 0xFF) << 24)
        elif entry.leaf in (0xB, 0x1F):
            entry = entry._replace(edx=apic)
        elif entry.leaf == 0x8000001E:
            entry = entry._replace(eax=apic)
        rows.append(entry)
    return record._replace(cpuid=tuple(rows), tsc_khz=tsc_khz)


def bases() -> List[Tuple[str, CpuRecord, List[str]]]:
    """The six real CPUs: name, record, the features of ``VARY`` it offers."""
    real = load_preset("pvm-6.18")
    assert real.cpu is not None
    found = [("pvm-6.18", real.cpu)] + [(name_of(p), fingerprint_record(p)) for p in FINGERPRINTS]
    out = []
    for name, record in found:
        offered = decode(record, arch="x86_64", source=name).features
        out.append((name, record, [f for f in VARY if f in offered]))
    return out


def make_fleet(directory: Path, hosts: int, seed: int = 17) -> List[Path]:
    """Write ``hosts`` snapshot files into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise SystemExit(f"{directory} is not empty")
    rng = random.Random(seed)
    skeleton = snapshot_document(load_preset("pvm-6.18"))
    cpus = bases()
    decoded: Dict[Tuple[str, Tuple[str, ...]], Any] = {}
    paths = []
    for i in range(hosts):
        name, record, vary = cpus[rng.randrange(len(cpus))]
        drop = tuple(sorted(rng.sample(vary, rng.choice((0, 0, 1, 2)))))
        key = (name, drop)
        if key not in decoded:  # the decoded view is the same for every host of one variant
            decoded[key] = decode(_without(record, drop), arch="x86_64", source=name).decoded_dict()
        host = _apic(_without(record, drop), rng.randrange(512), (record.tsc_khz or 2_600_000) + rng.randrange(-3, 4))
        document = dict(skeleton, cpu={**host.to_dict(), "decoded": decoded[key]})
        path = directory / f"host-{i:05d}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")  # as 'kvmprobe snapshot -o' writes it
        paths.append(path)
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    make_fleet(args.directory, args.hosts, args.seed)
    print(f"{args.hosts} snapshots in {os.fspath(args.directory)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
