"""examples/mini_ch_vmm.py checks what Cloud Hypervisor checks: the same capabilities, in order.

The example must not use kvmprobe (it stands in for a VMM), so its list is its own; this test
holds it against kvmprobe's Cloud Hypervisor profile, which cites Cloud Hypervisor's source.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from kvmprobe.profiles import builtin_profile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mini_ch_vmm.py"


def test_the_example_asks_cloud_hypervisors_required_list_in_its_order() -> None:
    required = runpy.run_path(str(EXAMPLE), run_name="example")["REQUIRED"]
    profile = builtin_profile("cloud-hypervisor", "x86_64")
    assert [(r.cap.rust_name, int(r.cap)) for r in profile.of_kind("required")] == list(required)


def test_the_example_imports_no_kvmprobe() -> None:
    assert "kvmprobe" not in "".join(line for line in EXAMPLE.read_text().splitlines(keepends=True)
                                     if line.startswith(("import", "from")))
