"""examples/: the YAML parses, and every kvmprobe command line and label in it is real.

The DaemonSet's and the systemd unit's commands are run through ``main()`` (against a fake
host, writing into a temporary directory instead of the real one); the label keys that the
NodeFeatureRule and the README's scheduling snippets select on must be labels the export
writes, and their expressions must match a host that has what they ask for.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kvmprobe._cli import main
from kvmprobe.export import gather
from kvmprobe.caps import CapLike
from kvmprobe.export import NFD_MAX_FILE_SIZE, nfd_features
from kvmprobe.testing import fake_kvm, fake_probe_result

from _k8s import k8s_key_ok, k8s_value_ok  # noqa: I001 (the test's own label rules)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FEATURES_D = "/etc/kubernetes/node-feature-discovery/features.d"

# A host with everything the examples select on: Firecracker's x86_64 needs and 1024 vCPUs.
CAPABLE: Dict[CapLike, int] = {
    name: 1
    for name in ("IRQCHIP", "IOEVENTFD", "IRQFD", "USER_MEMORY", "SET_TSS_ADDR", "PIT2", "PIT_STATE2",
                 "ADJUST_CLOCK", "DEBUGREGS", "MP_STATE", "VCPU_EVENTS", "XCRS", "XSAVE", "EXT_CPUID",
                 "IMMEDIATE_EXIT")
}
CAPABLE["MAX_VCPUS"] = 1024


def load_yaml(name: str) -> List[Any]:
    with open(EXAMPLES / name) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def kvmprobe_args(command: str) -> List[str]:
    """The arguments after ``-m kvmprobe`` in a shell script (one command per line)."""
    lines = [line for line in command.replace("\\\n", " ").splitlines() if "-m kvmprobe" in line]
    assert len(lines) == 1, command
    words = shlex.split(lines[0])
    at = words.index("kvmprobe")
    assert words[at - 1] == "-m", command
    end = next((i for i in range(at, len(words)) if words[i] in (";", "&&", "||", "|")), len(words))
    return words[at + 1:end]


def redirect_output(args: List[str], where: Path) -> List[str]:
    at = args.index("-o")
    return [*args[:at + 1], str(where / os.path.basename(args[at + 1])), *args[at + 2:]]


def nfd_labels(text: str) -> Dict[str, str]:
    labels: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            labels[key] = value
    return labels


def matches(op: str, values: List[str], actual: Optional[str]) -> bool:
    """NFD's and Kubernetes' expression operators, the ones the examples use."""
    if op == "Exists":
        return actual is not None
    if actual is None:
        return False
    if op == "In":
        return actual in values
    if op == "IsTrue":
        return actual == "true"
    if op in ("Gt", "Ge"):
        return int(actual) > int(values[0]) if op == "Gt" else int(actual) >= int(values[0])
    raise AssertionError(f"operator {op} not handled by this test")


def capable_labels() -> Dict[str, str]:
    with fake_kvm(CAPABLE):
        host = gather()
    assert host.usable
    return nfd_labels(nfd_features(host.result, usable=host.usable, vmm_ready=host.vmm))


# --- Kubernetes ---


def test_every_yaml_example_parses() -> None:
    kinds = {name: [doc["kind"] for doc in load_yaml(name)] for name in sorted(os.listdir(EXAMPLES))
             if name.endswith(".yaml")}
    assert kinds == {"nfd-daemonset.yaml": ["DaemonSet"], "nodefeaturerule.yaml": ["NodeFeatureRule"]}


def test_daemonset_is_consistent() -> None:
    (ds,) = load_yaml("nfd-daemonset.yaml")
    assert ds["apiVersion"] == "apps/v1"
    spec = ds["spec"]
    template = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts.keys() <= volumes.keys()
    features = next(name for name, path in mounts.items() if path == FEATURES_D)
    assert volumes[features]["hostPath"]["path"] == FEATURES_D
    assert {"operator": "Exists"} in pod["tolerations"]


def test_daemonset_command_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ds,) = load_yaml("nfd-daemonset.yaml")
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    script = "\n".join(container["command"][2:] + container["args"])
    args = kvmprobe_args(script)
    output = args[args.index("-o") + 1]
    assert os.path.dirname(output) == FEATURES_D
    assert not os.path.basename(output).startswith(".")  # nfd-worker skips dot-files
    with fake_kvm(CAPABLE):
        assert main(redirect_output(args, tmp_path)) == 0
    assert capsys.readouterr().err == ""
    text = (tmp_path / os.path.basename(output)).read_text()
    assert len(text.encode()) <= NFD_MAX_FILE_SIZE
    assert re.search(r"^# \+expiry-time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", text, re.M)
    labels = nfd_labels(text)
    assert labels and all(k8s_key_ok(k) and k8s_value_ok(v) for k, v in labels.items())
    assert labels["kvmprobe.io/kvm.usable"] == "true"


def test_nodefeaturerule_selects_labels_kvmprobe_writes() -> None:
    (rule_doc,) = load_yaml("nodefeaturerule.yaml")
    assert rule_doc["apiVersion"] == "nfd.k8s-sigs.io/v1alpha1"
    labels = capable_labels()
    for rule in rule_doc["spec"]["rules"]:
        assert all(k8s_key_ok(k) and k8s_value_ok(v) for k, v in rule["labels"].items())
        for term in rule["matchFeatures"]:
            assert term["feature"] == "local.feature"  # the feature files' attributes, by full label name
            for key, expr in term["matchExpressions"].items():
                assert key in labels, f"the rule selects on {key}, which kvmprobe does not write"
                assert matches(expr["op"], expr.get("value", []), labels[key]), key
    without = dict(labels, **{"kvmprobe.io/kvm.usable": "false"})
    first = rule_doc["spec"]["rules"][0]["matchFeatures"][0]["matchExpressions"]
    assert not all(matches(e["op"], e.get("value", []), without.get(k)) for k, e in first.items())


def readme_yaml_blocks() -> List[Any]:
    text = (EXAMPLES / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [yaml.safe_load(block) for block in blocks]


def test_readme_scheduling_snippets_select_real_labels() -> None:
    pods = readme_yaml_blocks()
    assert [p["kind"] for p in pods] == ["Pod", "Pod"]
    labels = capable_labels()
    selector = pods[0]["spec"]["nodeSelector"]
    assert selector and all(labels.get(k) == v for k, v in selector.items())
    terms = pods[1]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    for term in terms["nodeSelectorTerms"]:
        for expr in term["matchExpressions"]:
            assert expr["key"] in labels, expr["key"]
            assert matches(expr["operator"], expr["values"], labels[expr["key"]])


def test_readme_label_listing_is_what_the_export_writes() -> None:
    text = (EXAMPLES / "README.md").read_text()
    listing = re.search(r"```text\n(.*?)```", text, re.S)
    assert listing is not None
    shown = nfd_labels(listing.group(1))
    labels = capable_labels()
    assert shown and all(labels.get(k) == v for k, v in shown.items()), shown


# --- systemd ---


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(EXAMPLES / name)
    return parser


def test_service_command_runs_and_writes_parseable_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    service = unit("kvmprobe-textfile.service")["Service"]
    assert service["Type"] == "oneshot"
    args = kvmprobe_args(service["ExecStart"])
    output = args[args.index("-o") + 1]
    assert output.endswith(".prom")
    assert os.path.dirname(output) in service["ReadWritePaths"].split()
    assert "3" in service["SuccessExitStatus"].split()  # written, KVM not usable: a result, not a failure
    assert "/dev/kvm" in service["DeviceAllow"]
    with fake_kvm(CAPABLE):
        assert main(redirect_output(args, tmp_path)) == 0
    assert capsys.readouterr().err == ""
    families = {f.name: f for f in text_string_to_metric_families((tmp_path / os.path.basename(output)).read_text())}
    assert families["kvm_usable"].samples[0].value == 1


def test_service_command_on_a_host_without_kvm_exits_3_and_writes(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = kvmprobe_args(unit("kvmprobe-textfile.service")["Service"]["ExecStart"])
    args = redirect_output(args, tmp_path) + ["--device", str(tmp_path / "no-kvm")]
    assert main(args) == 3
    capsys.readouterr()
    (written,) = list(tmp_path.glob("*.prom"))
    assert "kvm_usable 0\n" in written.read_text()


def test_timer_starts_the_service() -> None:
    timer = unit("kvmprobe-textfile.timer")
    assert timer["Timer"]["Unit"] == "kvmprobe-textfile.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert timer["Timer"]["OnUnitActiveSec"]


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    for name in ("kvmprobe-textfile.service", "kvmprobe-textfile.timer"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    proc = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in sorted(os.listdir(tmp_path)))],
                          capture_output=True, text=True, timeout=120)
    # Complaints about the unit files name them; a host without /usr/bin/python3 is not our problem.
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if "kvmprobe-textfile" in line and "is not executable" not in line]
    assert complaints == []
