"""The node_exporter textfile: read back by prometheus_client's own parser, values equal the probe."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kvmprobe import Cap, KvmPermissionDenied, UnknownCapability, write_atomic
from kvmprobe.caps import CapLike
from kvmprobe.export import prometheus_text
from kvmprobe.host import HostFacts
from kvmprobe.testing import fake_probe_result

Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def parse(text: str) -> Tuple[Dict[str, Metric], Samples]:
    """Families by name and samples by (name, sorted labels), checking what node_exporter needs."""
    families: Dict[str, Metric] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"{family.name} appears twice"
        assert family.type == "gauge", family.name
        assert family.documentation, f"{family.name} has no HELP"
        families[family.name] = family
        for sample in family.samples:
            assert sample.timestamp is None, "node_exporter's textfile collector refuses timestamps"
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return families, samples


def cap_samples(samples: Samples) -> Dict[int, float]:
    found: Dict[int, float] = {}
    for (name, labels), value in samples.items():
        if name == "kvm_capability":
            by = dict(labels)
            cap = Cap(int(by["number"]))
            assert by["name"] == cap.c_name
            found[int(cap)] = value
    return found


def test_every_capability_value_round_trips() -> None:
    values: Dict[CapLike, int] = {cap: (int(cap) * 7919) % 70000 for cap in Cap}  # zeros, ones and counts
    result = fake_probe_result(values)
    families, samples = parse(prometheus_text(result, vmm_ready={"firecracker": True, "qemu": False}, nested=True))
    assert cap_samples(samples) == {int(cap): float(values[cap]) for cap in Cap}
    assert samples[("kvm_usable", ())] == 1
    assert samples[("kvm_api_version", ())] == 12
    assert samples[("kvm_nested_enabled", ())] == 1
    assert samples[("kvm_vmm_ready", (("vmm", "firecracker"),))] == 1
    assert samples[("kvm_vmm_ready", (("vmm", "qemu"),))] == 0
    info = [dict(labels) for (name, labels) in samples if name == "kvm_probe_info"]
    assert info == [{"kernel": "6.18.0", "arch": "x86_64", "device": "/dev/kvm", "source": "fake", "backend": "fake",
                     "version": info[0]["version"]}]
    assert set(families) == {"kvm_usable", "kvm_api_version", "kvm_capability", "kvm_vmm_ready", "kvm_nested_enabled",
                             "kvm_probe_info", "kvm_capability_bit", "kvm_vm_type"}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(list(Cap)), st.integers(min_value=0, max_value=2**31 - 1), max_size=40))
def test_any_values_parse_back_equal(values: Dict[Cap, int]) -> None:
    given_values: Dict[CapLike, int] = {cap: v for cap, v in values.items()}
    _, samples = parse(prometheus_text(fake_probe_result(given_values)))
    assert cap_samples(samples) == {int(cap): float(values.get(cap, 0)) for cap in Cap}


def test_failed_queries_are_their_own_gauge() -> None:
    result = fake_probe_result({"HLT": 1}, errors={"XSAVE": 22, "NR_VCPUS": 5})
    _, samples = parse(prometheus_text(result))
    assert int(Cap.XSAVE) not in cap_samples(samples) and cap_samples(samples)[int(Cap.HLT)] == 1
    errnos = {dict(labels)["name"]: v for (name, labels), v in samples.items() if name == "kvm_capability_query_errno"}
    assert errnos == {"KVM_CAP_XSAVE": 22, "KVM_CAP_NR_VCPUS": 5}


def test_capability_selection() -> None:
    _, samples = parse(prometheus_text(fake_probe_result({"IMMEDIATE_EXIT": 1}), caps=["IMMEDIATE_EXIT", "HLT"]))
    assert cap_samples(samples) == {int(Cap.HLT): 0.0, int(Cap.IMMEDIATE_EXIT): 1.0}
    families, _ = parse(prometheus_text(fake_probe_result({}), caps="none"))
    assert "kvm_capability" not in families
    with pytest.raises(UnknownCapability):
        prometheus_text(fake_probe_result({}), caps=["NOPE_NOT_A_CAP"])


def test_unreachable_device() -> None:
    families, samples = parse(prometheus_text(None, unavailable=KvmPermissionDenied("x"), vmm_ready={"qemu": False}))
    assert samples == {
        ("kvm_usable", ()): 0,
        ("kvm_unavailable", (("reason", "permission-denied"),)): 1,
        ("kvm_vmm_ready", (("vmm", "qemu"),)): 0,
    }


def test_unknown_nested_is_absent_and_recorded_nested_is_used() -> None:
    families, _ = parse(prometheus_text(fake_probe_result({})))
    assert "kvm_nested_enabled" not in families
    facts = HostFacts("Linux", "x86_64", "6.8.0", kvm_modules={"kvm": {}, "kvm_amd": {"nested": "0"}})
    recorded = dataclasses.replace(fake_probe_result({}), host=facts)
    _, samples = parse(prometheus_text(recorded))
    assert samples[("kvm_nested_enabled", ())] == 0


def test_label_values_are_escaped() -> None:
    odd = 'a "quoted"\\back\nline'
    result = fake_probe_result({}, kernel=odd, device="/dev/\"kvm\"")
    _, samples = parse(prometheus_text(result, vmm_ready={odd: True}))
    info = [dict(labels) for (name, labels) in samples if name == "kvm_probe_info"][0]
    assert info["kernel"] == odd and info["device"] == '/dev/"kvm"'
    assert samples[("kvm_vmm_ready", (("vmm", odd),))] == 1


def test_text_ends_with_one_newline_and_has_no_blank_lines() -> None:
    text = prometheus_text(fake_probe_result({"HLT": 1}))
    assert text.endswith("\n") and not text.endswith("\n\n")
    lines: List[str] = text.split("\n")[:-1]
    assert all(lines)


# --- The real consumer, where it is installed ---


def _node_exporter() -> str:
    for name in ("node_exporter", "prometheus-node-exporter"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("node_exporter is not installed here (Debian: apt-get install prometheus-node-exporter)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_node_exporter_reads_every_rewrite_whole(tmp_path: Path) -> None:
    exporter = _node_exporter()
    values: Dict[CapLike, int] = {cap: int(cap) % 5 for cap in Cap}
    texts = [prometheus_text(fake_probe_result(values), vmm_ready={"qemu": flag}) for flag in (True, False)]
    target = tmp_path / "kvmprobe.prom"
    write_atomic(target, texts[0])
    port = _free_port()
    proc = subprocess.Popen(
        [exporter, "--collector.disable-defaults", "--collector.textfile",
         f"--collector.textfile.directory={tmp_path}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    stop = threading.Event()

    def rewrite() -> None:
        flip = 0
        while not stop.is_set():
            flip ^= 1
            write_atomic(target, texts[flip])

    writer = threading.Thread(target=rewrite)
    try:
        for _ in range(200):  # wait until it listens
            try:
                _scrape(port)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"node_exporter exited: {proc.stderr.read().decode() if proc.stderr else ''}")
                stop.wait(0.05)
        writer.start()
        for _ in range(40):
            samples = parse_exposition(_scrape(port))
            assert samples[("node_textfile_scrape_error", ())] == 0
            assert cap_samples(samples) == {int(cap): float(values[cap]) for cap in Cap}
            assert samples[("kvm_usable", ())] == 1
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def parse_exposition(text: str) -> Samples:
    """Samples of a whole /metrics page (node_exporter's own families included)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples
