"""The NFD feature file: every key and value against the Kubernetes label rules, written out here.

The rules are restated in tests/_k8s.py from k8s.io/apimachinery/pkg/util/validation
(``IsQualifiedName``, ``IsValidLabelValue``, ``IsDNS1123Subdomain``) rather than imported from
kvmprobe.export, so the check does not share the code path it checks. The file is read the way
nfd-worker reads it (source/local/local.go: trim each line, skip ``#`` lines, split at the first
``=``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmprobe
from kvmprobe import Cap, KvmNotFound, KvmPermissionDenied, UnknownCapability
from kvmprobe.caps import CapLike
from kvmprobe.export import (
    DEFAULT_PREFIX,
    NFD_MAX_FILE_SIZE,
    cap_label_name,
    check_prefix,
    is_label_value,
    is_qualified_name,
    label_name,
    nfd_features,
    select_caps,
    unavailable_reason,
)
from kvmprobe.host import HostFacts
from kvmprobe.testing import fake_probe_result

from _k8s import k8s_key_ok, k8s_value_ok  # noqa: I001

# --- The Kubernetes rules, independently (tests/_k8s.py) ---


def read_like_nfd(text: str) -> Tuple[Dict[str, str], List[str]]:
    """(labels, directives) as nfd-worker's parseFeatureFile sees them."""
    labels: Dict[str, str] = {}
    directives: List[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# +"):
                directives.append(line[3:])
            continue
        key, _, value = line.partition("=")
        assert key not in labels, f"duplicate label {key}"
        labels[key] = value if "=" in line else "true"
    return labels, directives


def assert_all_valid(text: str) -> Dict[str, str]:
    labels, _ = read_like_nfd(text)
    for key, value in labels.items():
        assert k8s_key_ok(key), f"invalid label key {key!r}"
        assert "/" in key, f"unprefixed key {key!r} (nfd-master rejects those)"
        assert k8s_value_ok(value), f"invalid label value {value!r} for {key}"
    assert len(text.encode()) <= NFD_MAX_FILE_SIZE
    return labels


def everything(value: int = 1) -> kvmprobe.ProbeResult:
    values: Dict[CapLike, int] = {cap: value for cap in Cap}
    return fake_probe_result(values)


# --- The independent rules agree with kvmprobe's helpers on tricky keys ---

TRICKY_KEYS = [
    "kvmprobe.io/kvm.usable", "kvm.usable", "a/b", "a" * 253 + "/x", "a" * 254 + "/x", "x/" + "y" * 63,
    "x/" + "y" * 64, "/x", "x/", "X.io/x", "-a.io/x", "a..b/x", "a.io/_x", "a.io/x_", "a.io/x-y_z.w",
    "a.io/x/y", "", "a.io/ü", "a.io/x\n",
]


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_qualified_name_agrees_with_the_kubernetes_rule(key: str) -> None:
    assert is_qualified_name(key) == k8s_key_ok(key)


@pytest.mark.parametrize("value", ["", "1", "true", "32764", "-1", "a" * 63, "a" * 64, "a b", "_x", "x.", "1\n"])
def test_label_value_agrees_with_the_kubernetes_rule(value: str) -> None:
    assert is_label_value(value) == k8s_value_ok(value)


# --- Capability names ---


def test_every_capability_maps_to_a_valid_unique_label_name() -> None:
    names = {cap: cap_label_name(cap) for cap in Cap}
    for cap, name in names.items():
        assert k8s_key_ok(f"{DEFAULT_PREFIX}/{name}"), (cap.name, name)
        assert name == "kvm.cap." + cap.name.lower(), "every current name fits unchanged"
    assert len(set(names.values())) == len(Cap)


def test_cap_label_name_takes_any_spelling() -> None:
    assert cap_label_name("ImmediateExit") == cap_label_name(136) == "kvm.cap.immediate_exit"
    with pytest.raises(UnknownCapability):
        cap_label_name("NO_SUCH_CAP")


@pytest.mark.parametrize(
    "text",
    [
        "_" * 3 + "ARM_" * 30,  # too long and starts badly, like a future long KVM_CAP_ name
        "-leading-dash",
        "trailing.",
        "KVM_CAP_" + "X" * 80,
        "with spaces/and/slashes",
        "ümlaut",
        "",
        "___",
        "a" * 63,
        "a" * 64,
    ],
)
def test_label_name_repairs_anything(text: str) -> None:
    name = label_name(text)
    assert k8s_value_ok(name) and name != "" and len(name) <= 63
    assert label_name(text) == name  # deterministic
    if k8s_value_ok(text) and text:
        assert name == text
    else:
        assert name != text


def test_repaired_names_stay_distinct() -> None:
    texts = ["a b", "a-b", "a/b", "_a-b", "x" * 70, "x" * 71, "x" * 70 + "y"]
    names = [label_name(t) for t in texts]
    assert len(set(names)) == len(texts)


def test_a_too_long_capability_like_name_is_shortened_within_the_budget() -> None:
    budget = 63 - len("kvm.cap.")
    name = label_name("_arm_" + "very_long_" * 10 + "supported", max_length=budget)
    assert len(name) == budget and k8s_value_ok(name) and name.startswith("arm_very_long")
    assert k8s_key_ok(f"{DEFAULT_PREFIX}/kvm.cap.{name}")
    with pytest.raises(ValueError):
        label_name("x", max_length=8)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.integers(min_value=9, max_value=63))
def test_label_name_is_always_valid(text: str, budget: int) -> None:
    name = label_name(text, max_length=budget)
    assert 1 <= len(name) <= budget and k8s_value_ok(name)


# --- The file ---


def test_every_supported_capability_has_its_raw_value() -> None:
    values: Dict[CapLike, int] = {cap: 1 + int(cap) * 1000 for cap in Cap}
    text = nfd_features(fake_probe_result(values))
    labels = assert_all_valid(text)
    for cap in Cap:
        assert labels[f"{DEFAULT_PREFIX}/kvm.cap.{cap.name.lower()}"] == str(values[cap])
    assert labels[f"{DEFAULT_PREFIX}/kvm.usable"] == "true"
    assert labels[f"{DEFAULT_PREFIX}/kvm.api-version"] == "12"


def test_unsupported_and_failed_capabilities_have_no_label() -> None:
    result = fake_probe_result({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764}, errors={"XSAVE": 22})
    labels = assert_all_valid(nfd_features(result))
    caps = {k.split("/", 1)[1]: v for k, v in labels.items() if "/kvm.cap." in k}
    assert caps == {"kvm.cap.immediate_exit": "1", "kvm.cap.nr_memslots": "32764"}


def test_labels_with_a_custom_prefix_vmms_and_nested() -> None:
    vmms = {"firecracker": True, "cloud-hypervisor": False, "qemu": True}
    text = nfd_features(fake_probe_result({"HLT": 1}), vmm_ready=vmms, nested=True, prefix="kvm.example.com")
    labels = assert_all_valid(text)
    assert all(k.startswith("kvm.example.com/") for k in labels)
    assert labels["kvm.example.com/vmm.firecracker.ready"] == "true"
    assert labels["kvm.example.com/vmm.cloud-hypervisor.ready"] == "false"
    assert labels["kvm.example.com/kvm.nested"] == "true"


def test_odd_vmm_names_still_make_valid_distinct_keys() -> None:
    vmms = {"_my vmm": True, "my-vmm": False, "x" * 200: True, "ünï": False}
    labels = assert_all_valid(nfd_features(fake_probe_result({}), vmm_ready=vmms))
    ready = [k for k in labels if "/vmm." in k]
    assert len(ready) == 4 and all(k.endswith(".ready") for k in ready)


def test_nested_comes_from_recorded_host_facts_unless_given() -> None:
    facts = HostFacts("Linux", "x86_64", "6.8.0", kvm_modules={"kvm": {}, "kvm_intel": {"nested": "Y"}})
    recorded = dataclasses.replace(fake_probe_result({"HLT": 1}), host=facts)
    assert read_like_nfd(nfd_features(recorded))[0][f"{DEFAULT_PREFIX}/kvm.nested"] == "true"
    assert read_like_nfd(nfd_features(recorded, nested=False))[0][f"{DEFAULT_PREFIX}/kvm.nested"] == "false"
    unknown = dataclasses.replace(fake_probe_result({"HLT": 1}), host=HostFacts("Linux", "x86_64", "6.18"))
    assert f"{DEFAULT_PREFIX}/kvm.nested" not in read_like_nfd(nfd_features(unknown))[0]


@pytest.mark.parametrize(
    "error, reason", [(KvmPermissionDenied("denied"), "permission-denied"), (KvmNotFound("gone"), "not-found")]
)
def test_an_unreachable_device_still_exports_usable_false(error: Exception, reason: str) -> None:
    text = nfd_features(None, unavailable=error, vmm_ready={"qemu": False}, nested=False)
    labels = assert_all_valid(text)
    assert labels == {
        f"{DEFAULT_PREFIX}/kvm.usable": "false",
        f"{DEFAULT_PREFIX}/kvm.unavailable": reason,
        f"{DEFAULT_PREFIX}/kvm.nested": "false",
        f"{DEFAULT_PREFIX}/vmm.qemu.ready": "false",
    }


def test_usable_follows_the_verdict_given() -> None:
    result = fake_probe_result({"HLT": 1})
    assert read_like_nfd(nfd_features(result, usable=False))[0][f"{DEFAULT_PREFIX}/kvm.usable"] == "false"
    old = fake_probe_result({"HLT": 1}, api_version=11)
    assert read_like_nfd(nfd_features(old))[0][f"{DEFAULT_PREFIX}/kvm.usable"] == "false"


@pytest.mark.parametrize(
    "error_name, reason",
    [("KvmPermissionDenied", "permission-denied"), ("KvmNotFound", "not-found"), ("NotAKvmDevice", "not-a-kvm-device"),
     ("KvmBusy", "busy"), ("KvmIoctlError", "ioctl-error"), ("UnsupportedPlatform", "unsupported-platform")],
)
def test_every_unavailable_error_has_a_label_safe_reason(error_name: str, reason: str) -> None:
    error = getattr(kvmprobe, error_name)("message")
    assert unavailable_reason(error) == reason and k8s_value_ok(reason)


# --- Capability selection ---


def test_a_capability_list_limits_the_labels() -> None:
    result = everything()
    labels = assert_all_valid(nfd_features(result, caps="KVM_CAP_IMMEDIATE_EXIT,nr_memslots, 157"))
    assert sorted(k.split("/")[1] for k in labels if "/kvm.cap." in k) == [
        "kvm.cap.immediate_exit", "kvm.cap.nested_state", "kvm.cap.nr_memslots"]
    assert not any("/kvm.cap." in k for k in read_like_nfd(nfd_features(result, caps="none"))[0])
    assert select_caps([Cap.HLT, "hlt", 1]) == (Cap.HLT,)
    with pytest.raises(UnknownCapability, match="IMMEDIATE_EXIT"):
        nfd_features(result, caps="IMEDIATE_EXIT")
    with pytest.raises(ValueError, match="names nothing"):
        select_caps("")


# --- Prefix ---


@pytest.mark.parametrize(
    "prefix",
    ["kvmprobe.io", "kvm.example.com", "feature.node.kubernetes.io", "kvm.feature.node.kubernetes.io",
     "profile.node.kubernetes.io", "a", "a" * 63 + "." + "b" * 63, "x-1.y-2"],
)
def test_good_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix
    assert_all_valid(nfd_features(fake_probe_result({"HLT": 1}), prefix=prefix))


@pytest.mark.parametrize(
    "prefix, why",
    [("", "DNS subdomain"), ("Kvm.io", "DNS subdomain"), ("-kvm.io", "DNS subdomain"), ("kvm.io.", "DNS subdomain"),
     ("kvm..io", "DNS subdomain"), ("kvm_probe.io", "DNS subdomain"), ("a" * 254, "DNS subdomain"),
     ("kvm.io/x", "DNS subdomain"), ("kubernetes.io", "nfd-master drops"), ("node.kubernetes.io", "nfd-master drops"),
     ("kvm.kubernetes.io", "nfd-master drops")],
)
def test_bad_prefixes_are_refused_with_the_reason(prefix: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        nfd_features(fake_probe_result({"HLT": 1}), prefix=prefix)


# --- Size ---


def test_the_file_stays_under_nfds_limit_or_is_refused() -> None:
    result = everything(2**31 - 1)
    assert len(nfd_features(result).encode()) < NFD_MAX_FILE_SIZE
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    with pytest.raises(ValueError, match="65536"):
        nfd_features(result, prefix=longest)
    assert_all_valid(nfd_features(result, prefix=longest, caps="IMMEDIATE_EXIT,NR_MEMSLOTS"))


# --- Expiry ---


def test_expiry_directive_comes_first_in_rfc3339_utc() -> None:
    paris = timezone(timedelta(hours=1))
    text = nfd_features(fake_probe_result({"HLT": 1}), expiry_time=datetime(2026, 11, 26, 11, 30, 5, 999, paris))
    lines = [line for line in text.splitlines() if line.strip()]
    first_label = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    directive = [i for i, line in enumerate(lines) if line.startswith("# +expiry-time=")]
    assert directive and directive[0] < first_label
    _, directives = read_like_nfd(text)
    assert directives == ["expiry-time=2026-11-26T10:30:05Z"]
    parsed = datetime.strptime(directives[0].split("=", 1)[1], "%Y-%m-%dT%H:%M:%SZ")
    assert parsed.replace(tzinfo=timezone.utc) == datetime(2026, 11, 26, 10, 30, 5, tzinfo=timezone.utc)


def test_no_expiry_no_directive_and_naive_time_refused() -> None:
    assert read_like_nfd(nfd_features(fake_probe_result({})))[1] == []
    with pytest.raises(ValueError, match="time zone"):
        nfd_features(fake_probe_result({}), expiry_time=datetime(2026, 11, 26))


def test_output_is_deterministic() -> None:
    result = fake_probe_result({"HLT": 1, "IRQCHIP": 1})
    vmms: Dict[str, bool] = {"b": True, "a": False}
    assert nfd_features(result, vmm_ready=vmms) == nfd_features(result, vmm_ready=dict(reversed(list(vmms.items()))))


def test_a_reachable_but_unusable_device_names_the_failed_check() -> None:
    text = nfd_features(fake_probe_result({"HLT": 1}), unavailable="create-vm")
    labels = assert_all_valid(text)
    assert labels[f"{DEFAULT_PREFIX}/kvm.usable"] == "false"
    assert labels[f"{DEFAULT_PREFIX}/kvm.unavailable"] == "create-vm"
    assert labels[f"{DEFAULT_PREFIX}/kvm.cap.hlt"] == "1"  # what the kernel answered still counts
    odd = assert_all_valid(nfd_features(None, unavailable="_weird reason!"))
    assert k8s_value_ok(odd[f"{DEFAULT_PREFIX}/kvm.unavailable"])
