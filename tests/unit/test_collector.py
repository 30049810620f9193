"""kvmprobe-collect.py, the collector for old hosts: served with this kvmprobe's tables, valid
Python 2.7 and 3.6 (vermin, and a real run with each where installed), reading a host's files
exactly as kvmprobe does, decoding the CPU exactly as kvmprobe does, and writing a document that
says what went wrong instead of a traceback. No /dev/kvm is needed here: the device is one that
cannot be KVM (missing, a regular file, a directory); the live comparison with ``kvmprobe
snapshot`` is tests/hardware/test_collector_hw.py.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _collect import as_json, cpu_record_dict, differences, document, load, nobody_scratch, run, serve
from _packaging import child_env, interpreter
from kvmprobe import load_snapshot
from kvmprobe._collector import PLACEHOLDER, TEMPLATE, knowledge, script
from kvmprobe._cpu_decode import decode
from kvmprobe._cpu_record import CpuRecord
from kvmprobe._cpuid_table import FEATURES
from kvmprobe._host_reader import read_confidential_files, read_host_facts
from kvmprobe._kvm_structs import CpuidEntry, IoctlFailure
from kvmprobe._cli import main
from kvmprobe.presets import load_preset
from kvmprobe.testing import FakeHost, fake_cpu_record

ROOT = Path(__file__).resolve().parents[2]
_CPU_IOCTLS = ["KVM_GET_SUPPORTED_CPUID", "KVM_GET_EMULATED_CPUID", "KVM_GET_MSR_INDEX_LIST",
               "KVM_GET_MSR_FEATURE_INDEX_LIST", "KVM_GET_DEVICE_ATTR"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve(tmp_path_factory.mktemp("collector"))


@pytest.fixture(scope="module")
def collector(served: Path) -> ModuleType:
    return load(served)


# --- what is served ---------------------------------------------------------------------------


def test_the_served_file_is_the_template_with_this_kvmprobes_tables(served: Path, collector: ModuleType) -> None:
    template = (ROOT / "src" / "kvmprobe" / TEMPLATE).read_text(encoding="ascii")
    text = served.read_text(encoding="ascii")
    assert template.count(PLACEHOLDER) == 1 and PLACEHOLDER not in text
    head, tail = template.split(PLACEHOLDER)
    assert text.startswith(head) and text.endswith(tail)
    assert collector.knowledge().data == as_json(knowledge())
    names = [name for name, _ in collector.knowledge().caps]
    assert len(names) == len(set(names)) == len(knowledge()["caps"]) and "KVM_CAP_IMMEDIATE_EXIT" in names


def test_kvmprobe_collector_prints_it_and_writes_it_only_over_a_regular_file(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["collector"]) == 0
    assert out.getvalue() == script()
    target = tmp_path / "kvmprobe-collect.py"
    assert main(["collector", "-o", str(target)]) == 0
    assert target.read_text(encoding="ascii") == script()
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "collector", "-o", "/dev/null"], capture_output=True,
                          text=True, timeout=120, env=child_env())
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("kvmprobe: error: cannot write /dev/null: it is a character device")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_the_template_alone_says_where_to_get_the_collector(tmp_path: Path) -> None:
    bare = tmp_path / "template.py"
    shutil.copy(ROOT / "src" / "kvmprobe" / TEMPLATE, bare)
    done = run(sys.executable, bare)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("kvmprobe-collect: error: this is the collector's template, without kvmprobe's tables "
                           "(hint: get the collector from kvmprobe: 'kvmprobe collector > kvmprobe-collect.py')\n")


def _vermin(*args: str) -> "subprocess.CompletedProcess[str]":
    pytest.importorskip("vermin", reason="vermin is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())",
                           "--no-config-file", "--no-tips", "--processes=1", *args],
                          capture_output=True, text=True, timeout=300)


def test_vermin_finds_it_runs_on_python_2_7_and_3_6(served: Path) -> None:
    # -t=2.7 and -t=3.6- (3.6 or lower): --violations lists whatever needs a newer Python.
    violations = _vermin("-t=2.7", "-t=3.6-", "--violations", str(served))
    assert violations.returncode == 0, violations.stdout + violations.stderr
    report = _vermin(str(served))
    found = re.search(r"Minimum required versions: (\d+)\.(\d+), (\d+)\.(\d+)", report.stdout)
    assert found is not None, report.stdout
    py2, py3 = (int(found[1]), int(found[2])), (int(found[3]), int(found[4]))
    assert py2 <= (2, 7) and py3 <= (3, 6), report.stdout


# --- the host's files, read as kvmprobe reads them ------------------------------------------------


def _hosts() -> Iterator[Tuple[str, FakeHost]]:
    yield "centos7", FakeHost.centos7()
    yield "amd-nested0", FakeHost.amd_nested0()
    yield "no-kvm-module", FakeHost.no_kvm_module()
    yield "outside-kvm-group", FakeHost.outside_kvm_group()
    yield "pvm", FakeHost.pvm()
    yield "container", FakeHost.container_no_kvm()
    yield "amd-snp", FakeHost.amd_snp()
    yield "intel-tdx-off", FakeHost.intel_tdx_off()
    yield "aarch64", FakeHost(machine="aarch64", cpu_vendor=None, cpu_flags=("fp", "asimd"), modules={"kvm": {}})
    # Everything the confidential reader reads, with a log line a terminal would misread.
    yield "files", FakeHost(
        cpuid={0x80000000: (0x80000021, 0, 0, 0), 0x8000001F: (0x1B, 0x4033, 509, 100)},
        cmdline="ro kvm_amd.sev=1 mem_encrypt=on quiet nohibernate",
        misc_capacity={"sev": 410, "sev_es": 99},
        memlock=(-1, 8388608),
        cap_eff=1 << 14,
        kernel_log=("ccp 0000:22:00.1: SEV API:1.55 build:21", "kvm_amd: SEV-SNP \x1b[31menabled", "unrelated"),
        msr=(0x3A, 0x5),
    )


@pytest.mark.parametrize("name, host", list(_hosts()), ids=[name for name, _ in _hosts()])
def test_host_facts_and_files_are_kvmprobes_own_reading(collector: ModuleType, tmp_path: Path, name: str,
                                                        host: FakeHost) -> None:
    root = host.write(str(tmp_path))
    know = collector.knowledge()
    reader = collector.Reader(root)
    ours = collector.read_host_facts(reader, "/dev/kvm", ("Linux", "h", "0", "x", "x86_64"), know)
    assert differences(as_json(ours), as_json(read_host_facts(root, device="/dev/kvm").to_dict())) == []
    files = read_confidential_files(root).to_dict()
    files["kvm_note"] = "KVM was not asked (the SEV attributes, creating confidential VMs)"
    assert differences(as_json(collector.read_confidential_files(reader, know)), as_json(files)) == []


# --- the CPU, decoded as kvmprobe decodes it -------------------------------------------------------


def _cpu_section(record: CpuRecord, backend: Any) -> Any:
    info = decode(record, arch="x86_64", source="test", kvm_backend=backend)
    return as_json({**record.to_dict(), "decoded": info.decoded_dict()})


def _records() -> Iterator[Tuple[str, CpuRecord]]:
    preset = load_preset("pvm-6.18").cpu
    assert preset is not None
    yield "pvm-6.18", preset
    yield "intel", fake_cpu_record(["sse", "sse2", "avx2", "avx512f", "kvm_pv_eoi", "osxsave"], xsave=0x2E7,
                                   host_features=["sse", "sse2", "avx2", "avx512f", "amx_tile", "vmx", "hypervisor"],
                                   emulated=["movbe", "sse"], feature_msrs={0x10A: 0x0C000069, 0x8B: 0x2C << 32,
                                                                             0xCE: 1 << 31, 0x999: 7}, msrs=[0x10, 0x174])
    yield "amd", fake_cpu_record(["sse", "svm", "sev"], vendor="AuthenticAMD", signature=0x00A00F11,
                                 feature_msrs={0x8B: 0x0A0011D3, 0x10A: 0, 0xCE: 0})
    yield "failed", CpuRecord(host_cpuid_source="not readable: mmap of a code page failed (Operation not permitted)",
                              host_flags=("fpu", "vmx"), failed=tuple(IoctlFailure(n, 13) for n in _CPU_IOCTLS))
    # A leaf past its range head (0x8000001F when 0x80000000 says 0x80000008), a significant index.
    yield "ranges", CpuRecord(
        cpuid=(CpuidEntry(0x80000000, 0, 0, 0x80000008, 0, 0, 0), CpuidEntry(0x8000001F, 0, 0, 0xF, 0, 0, 0),
               CpuidEntry(7, 1, 1, 0x10, 0, 0, 0), CpuidEntry(7, 0, 1, 0, 0x20, 0, 0), CpuidEntry(0xB, 0, 1, 1, 2, 3, 9)),
        host_cpuid=(CpuidEntry(0, 0, 0, 0xD, 0x68747541, 0x444D4163, 0x69746E65), CpuidEntry(0xD, 0, 1, 7, 0, 0, 2)),
        host_cpuid_source="CPUID instruction", feature_msr_indices=(0x8B,), feature_msrs=())


@pytest.mark.parametrize("name, record", list(_records()), ids=[name for name, _ in _records()])
@pytest.mark.parametrize("backend", [None, "kvm_intel", "kvm_pvm"])
def test_the_cpu_section_is_kvmprobes_own(collector: ModuleType, name: str, record: CpuRecord, backend: Any) -> None:
    ours = collector.cpu_section(cpu_record_dict(record), backend, collector.knowledge())
    assert differences(as_json(ours), _cpu_section(record, backend)) == []


_LEAVES = sorted({(row.leaf, row.subleaf or 0, 1 if row.subleaf is not None else 0) for row in FEATURES}
                 | {(0, 0, 0), (0x80000000, 0, 0), (0x40000000, 0, 0), (1, 0, 0), (0xD, 0, 1), (0xB, 0, 1)})
_U32 = st.integers(0, 2**32 - 1)
_ENTRY = st.tuples(st.sampled_from(_LEAVES), _U32, _U32, _U32, _U32).map(lambda t: CpuidEntry(*t[0], *t[1:]))
_ENTRIES = st.one_of(st.none(), st.lists(_ENTRY, max_size=12).map(tuple))
_MSRS = st.dictionaries(st.sampled_from([0x8B, 0x10A, 0xCE, 0x345, 0x999]), st.integers(0, 2**64 - 1), max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kvm=_ENTRIES, host=_ENTRIES, emulated=_ENTRIES, msrs=_MSRS,
       flags=st.one_of(st.none(), st.lists(st.sampled_from(["sse", "vmx", "avx2", "xmm3", "hypervisor", "zzz"]))),
       xcomp=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
       backend=st.sampled_from([None, "kvm_pvm", "kvm_amd"]))
def test_any_record_decodes_as_kvmprobe_decodes_it(collector: ModuleType, kvm: Any, host: Any, emulated: Any,
                                                   msrs: Dict[int, int], flags: Any, xcomp: Any, backend: Any) -> None:
    record = CpuRecord(cpuid=kvm, emulated_cpuid=emulated, host_cpuid=host, host_flags=None if flags is None else
                       tuple(flags), feature_msr_indices=tuple(msrs) + (0x123,), feature_msrs=tuple(msrs.items()),
                       xcomp_guest_supp=xcomp, host_cpuid_source=None if host is None else "CPUID instruction",
                       failed=() if kvm is not None else (IoctlFailure("KVM_GET_SUPPORTED_CPUID", 7),))
    ours = collector.cpu_section(cpu_record_dict(record), backend, collector.knowledge())
    assert differences(as_json(ours), _cpu_section(record, backend)) == []


# --- the bad situations: a document that says so, never a traceback ---------------------------------


def _collect(served: Path, tmp_path: Path, *args: str, python: str = sys.executable) -> Tuple[Any, str]:
    target = tmp_path / "host.json"
    done = run(python, served, "-o", str(target), *args)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return document(target), done.stdout


def _doctor(path: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "kvmprobe", "doctor", "--snapshot", str(path)], capture_output=True,
                          text=True, timeout=120, env=child_env())


def _all_failed_with(doc: Any, code: int) -> bool:
    rows = doc["capabilities"]
    return len(rows) == len(knowledge()["caps"]) and all(row["value"] is None and row["error"] == code for row in rows)


def test_no_device_there(served: Path, tmp_path: Path) -> None:
    root = FakeHost.no_kvm_module().write(str(tmp_path / "root"))
    doc, said = _collect(served, tmp_path, "--device", "/nonexistent/kvm", "--root", root)
    assert said == (f"{tmp_path / 'host.json'}: /nonexistent/kvm could not be opened: ENOENT (No such file or "
                    "directory); every query records that errno\n")
    assert doc["api_version"] == 0 and _all_failed_with(doc, errno.ENOENT)
    assert doc["host"]["devices"]["/nonexistent/kvm"] is None and doc["host"]["kvm_modules"] == {}
    if doc["cpu"] is not None:  # an x86 machine runs the collector: KVM's CPU queries failed alike
        assert doc["cpu"]["failed"] == [{"ioctl": name, "errno": errno.ENOENT} for name in _CPU_IOCTLS]
        assert doc["cpu"]["decoded"]["readable"] is False
    assert load_snapshot(tmp_path / "host.json").errors
    doctor = _doctor(tmp_path / "host.json")
    assert doctor.returncode == 1, doctor.stdout
    assert re.search(r"FAIL  device-access +/nonexistent/kvm does not exist", doctor.stdout), doctor.stdout
    assert "verdict: KVM not usable: /nonexistent/kvm does not exist" in doctor.stdout


def test_a_file_that_is_no_kvm_device(served: Path, tmp_path: Path) -> None:
    device = tmp_path / "not-kvm"
    device.write_text("")
    doc, said = _collect(served, tmp_path, "--device", str(device))
    assert "did not answer KVM_GET_API_VERSION: ENOTTY" in said
    assert doc["api_version"] == 0 and _all_failed_with(doc, errno.ENOTTY)
    assert doc["host"]["devices"][str(device)]["type"] == "file"
    doctor = _doctor(tmp_path / "host.json")
    assert doctor.returncode == 1
    assert re.search(rf"FAIL  api-version +{device} is not a KVM device \(KVM_GET_API_VERSION: ENOTTY", doctor.stdout)


def test_a_directory(served: Path, tmp_path: Path) -> None:
    doc, said = _collect(served, tmp_path, "--device", str(tmp_path))
    assert doc["api_version"] == 0 and _all_failed_with(doc, errno.EISDIR)
    assert re.search(rf"FAIL  device-access +{tmp_path} is a directory, not a KVM device", _doctor(tmp_path / "host.json").stdout)


def test_a_device_this_user_may_not_open(served: Path) -> None:
    """As uid 65534 (setpriv), a root-owned 0600 file stands for the device: EACCES on every query."""
    with nobody_scratch(served) as (where, as_nobody):
        device = where / "kvm"
        device.write_text("")
        device.chmod(0o600)
        done = as_nobody("--device", str(device))
        assert done.returncode == 0, done.stderr
        assert done.stderr == (f"kvmprobe-collect: note: {device} could not be opened: EACCES (Permission denied); "
                               "every query records that errno\n")
        doc = json.loads(done.stdout)
        assert _all_failed_with(doc, errno.EACCES) and doc["host"]["uid"] == 65534
        assert doc["host"]["devices"][str(device)]["mode"] == "0600"
        (where / "host.json").write_text(done.stdout)
        doctor = _doctor(where / "host.json")
        assert re.search(rf"FAIL  device-access +{device}: permission denied for .*uid 65534", doctor.stdout), doctor.stdout


def test_an_api_version_other_than_12_is_recorded_and_said(collector: ModuleType) -> None:
    # kvmprobe refuses such a device; the collector keeps what it answered (doctor's api-version check says why not).
    outcome = collector.Outcome()
    outcome.api_version = 11
    doc = {"capabilities": [{"value": 1}, {"value": None}], "kernel": "3.10.0", "arch": "x86_64", "device": "/dev/kvm"}
    assert collector.summary(doc, outcome) == ("Linux 3.10.0 (x86_64), 1 of 2 capabilities supported; /dev/kvm answered "
                                               "KVM API version 11, every VMM needs 12")


@pytest.mark.parametrize("uname, why", [
    (("Darwin", "mac", "23.1.0", "Darwin Kernel", "arm64"), "KVM is a Linux interface; this is Darwin"),
    (("Linux", "box", "6.1.0", "#1", "xtensa"), "no ioctl encoding known for CPU architecture 'xtensa'"),
])
def test_not_linux_or_an_architecture_without_ioctl_numbers(collector: ModuleType, tmp_path: Path,
                                                            uname: Tuple[str, ...], why: str) -> None:
    doc, outcome = collector.collect(device="/dev/kvm", root=str(tmp_path), uname=uname)
    assert collector.summary(doc, outcome) == f"KVM not asked: {why}; the host facts are recorded"
    assert doc["capabilities"] == [] and doc["cpu"] is None and doc["api_version"] == 0
    assert (doc["kernel"], doc["arch"]) == (uname[2], uname[4])
    assert ("confidential" in doc) == (uname[0] == "Linux")
    path = tmp_path / "host.json"
    path.write_text(json.dumps(doc))
    result = load_snapshot(path)
    assert len(result.not_recorded) == len(knowledge()["caps"]) and not result.errors
    doctor = _doctor(path)
    assert doctor.returncode == 1
    assert re.search(rf"FAIL  device-access +/dev/kvm was not asked when the host was recorded", doctor.stdout)
    if uname[0] != "Linux":
        assert re.search(r"FAIL  platform +Darwin arm64: KVM is a Linux interface", doctor.stdout)


@pytest.mark.parametrize("args, env, message", [
    (("-o", "/dev/null"), {}, "cannot write /dev/null: it is not a regular file"),
    (("-o", "/nonexistent/host.json"), {}, "cannot write /nonexistent/host.json: the directory /nonexistent does not exist"),
    (("-o", "/"), {}, "cannot write /: it is a directory"),
    ((), {"KVMPROBE_DEVICE": ""}, "KVMPROBE_DEVICE is set but empty"),
    (("--device", ""), {}, "the KVM device path given (--device) is empty"),
])
def test_what_cannot_be_done_is_one_line_and_exit_2(served: Path, args: Tuple[str, ...], env: Dict[str, str],
                                                    message: str) -> None:
    done = run(sys.executable, served, *args, env={**child_env(), **env})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"kvmprobe-collect: error: {message}") and len(done.stderr.splitlines()) == 1
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --- the same with the old Pythons ------------------------------------------------------------------


def _pythons() -> List[Any]:
    return [pytest.param(version, id=f"python{version}") for version in ("2.7", "3.6")] + \
        [pytest.param(None, id="this-python")]


@pytest.mark.parametrize("version", _pythons())
def test_it_runs_unchanged_with_each_python(served: Path, tmp_path: Path, version: Any) -> None:
    python = sys.executable if version is None else interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} here (python{version} on PATH or a pyenv {version}.x)")
    root = dict(_hosts())["files"].write(str(tmp_path / "root"))
    doc, _ = _collect(served, tmp_path, "--device", "/nonexistent/kvm", "--root", root, python=python)
    want = sys.version_info[:3] if version is None else None
    marker = doc["backend"]
    assert marker.startswith("collector (fcntl, Python ")
    if want is not None:
        assert marker == "collector (fcntl, Python %d.%d.%d)" % want
    else:
        assert marker.startswith(f"collector (fcntl, Python {version}.")
    assert differences(doc["host"], as_json(read_host_facts(root, device="/nonexistent/kvm").to_dict())) == []
    files = read_confidential_files(root).to_dict()
    files["kvm_note"] = "KVM was not asked (the SEV attributes, creating confidential VMs)"
    assert differences(doc["confidential"], as_json(files)) == []
    assert _all_failed_with(doc, errno.ENOENT)
    load_snapshot(tmp_path / "host.json")
