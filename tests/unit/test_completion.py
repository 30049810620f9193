"""The bash completion (scripts/build_completion.py), run by a real bash.

Most cases source the generated script in one ``bash`` and call ``_kvmprobe`` with
``COMP_WORDS``/``COMP_CWORD`` split as bash splits a command line (at COMP_WORDBREAKS too:
``preset:linux`` arrives as ``preset``, ``:``, ``linux``); one test types into an interactive
bash on a pseudo-terminal, so readline itself completes and the line that runs is checked.
The expected words come from the package (commands, VMMs, capabilities, presets, options).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest

import _cli_model
import build_completion
from _packaging import run_script
from kvmprobe import Cap
from kvmprobe._cli import _COMMANDS
from kvmprobe.presets import preset_names
from kvmprobe.confidential import KINDS
from kvmprobe.profiles import vmm_names

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def bash_words(line: str) -> List[str]:
    """``line`` as bash hands it to a completion function: split at blanks, and at runs of
    COMP_WORDBREAKS characters (':' and '=' here); a line ending in a blank has an empty last word."""
    words = [token for word in line.split() for token in re.findall(r"[=:]+|[^=:]+", word)]
    return words + [""] if line.endswith(" ") or not words else words


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("completion") / "kvmprobe.bash"
    run_script("build_completion.py", "-o", str(target))
    return target


def complete(script: Path, lines: List[str], cwd: Path) -> Dict[str, List[str]]:
    """COMPREPLY for each command line (the cursor at its end), from one bash process."""
    program = [f"source {shlex.quote(str(script))}"]
    for index, line in enumerate(lines):
        words = bash_words(line)
        program += [
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}",
            f'_kvmprobe kvmprobe {shlex.quote(words[-1])} {shlex.quote(words[-2] if len(words) > 1 else "")}',
            f'printf "%s\\n" "@@{index}" "${{COMPREPLY[@]}}"',
        ]
    assert BASH is not None
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", "\n".join(program)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    replies: Dict[str, List[str]] = {}
    current: List[str] = []
    for out in done.stdout.splitlines():
        if out.startswith("@@"):
            current = replies.setdefault(lines[int(out[2:])], [])
        elif out:
            current.append(out)
    return replies


def options_of(command: str) -> List[str]:
    sub = {c.name: c.parser for c in _cli_model.commands()}[command]
    return [name for action in _cli_model.own_actions(sub) for name in action.option_strings]


def test_words_complete_from_the_package(script: Path, tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{}")
    (tmp_path / "hosts").mkdir()
    presets = preset_names()
    expected: Dict[str, List[str]] = {
        "kvmprobe ": list(_COMMANDS),
        "kvmprobe ch": ["check"],
        "kvmprobe d": [c for c in _COMMANDS if c.startswith("d")],
        "kvmprobe check cl": ["cloud-hypervisor"],
        "kvmprobe check ": vmm_names() + list(KINDS),
        "kvmprobe check sev-s": ["sev-snp"],
        "kvmprobe check firecracker q": ["qemu"],
        "kvmprobe check --profile x.json cl": ["cloud-hypervisor"],
        "kvmprobe check --": [o for o in options_of("check") if o.startswith("--")],
        "kvmprobe has IMMEDIATE_": ["IMMEDIATE_EXIT"],
        "kvmprobe has KVM_CAP_IMMEDIATE_": ["KVM_CAP_IMMEDIATE_EXIT"],
        "kvmprobe has immediate_": ["immediate_exit"],
        "kvmprobe has ": [cap.name for cap in Cap],
        "kvmprobe has --device /dev/kvm IMMEDIATE_E": ["IMMEDIATE_EXIT"],
        # What readline still needs after the ':' it has already split off.
        "kvmprobe has --snapshot preset:": presets,
        "kvmprobe has --snapshot preset:linux-5": [p for p in presets if p.startswith("linux-5")],
        "kvmprobe check --snapshot=preset:pvm": [p for p in presets if p.startswith("pvm")],
        "kvmprobe --snapshot preset:pvm": [p for p in presets if p.startswith("pvm")],
        "kvmprobe diff preset:linux-3.10 preset:linux-6": [p for p in presets if p.startswith("linux-6")],
        "kvmprobe doctor --snapshot pre": ["preset:"],
        "kvmprobe doctor --snapshot ho": ["host.json", "hosts/"],
        "kvmprobe snapshot -o ho": ["host.json", "hosts"],
        "kvmprobe export --format ": ["nfd", "prometheus"],
        "kvmprobe emulate --mask HLT,IMMEDIATE_": ["HLT,IMMEDIATE_EXIT"],
        "kvmprobe emulate --host preset:pvm-6.18 -- bas": ["bash"],
        "kvmprobe learn --timeout ": [],
        # 'kvmprobe --json has' is refused, so no command is offered after an option.
        "kvmprobe --json ": [],
        "kvmprobe doctor --json --strict ": [],
    }
    replies = complete(script, list(expected), tmp_path)
    for line, words in expected.items():
        got = replies[line]
        if "bas" in line.split()[-1]:
            assert words[0] in got, line  # compgen -c: every command on PATH that starts so
        else:
            assert sorted(got) == sorted(words), line
    top = replies.get("kvmprobe --") or complete(script, ["kvmprobe --"], tmp_path)["kvmprobe --"]
    assert {"--version", "--help", "--json", "--snapshot"} <= set(top)


def test_every_command_and_option_is_offered(script: Path, tmp_path: Path) -> None:
    lines = [f"kvmprobe {command} -" for command in _COMMANDS]
    replies = complete(script, lines, tmp_path)
    for command, line in zip(_COMMANDS, lines):
        assert sorted(replies[line]) == sorted(options_of(command)), command


def test_a_new_command_is_picked_up_without_an_edit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parser = _cli_model.top_parser()
    sub = _cli_model.subparsers_action(parser).add_parser("frobnicate", help="a command added later")
    sub.add_argument("vmms", nargs="*", metavar="VMM")
    sub.add_argument("--baseline", metavar="FILE", help="a snapshot file or preset:NAME")
    sub.add_argument("--level", choices=("low", "high"))
    monkeypatch.setattr(_cli_model, "top_parser", lambda: parser)
    script = tmp_path / "kvmprobe.bash"
    script.write_text(build_completion.script())
    replies = complete(script, ["kvmprobe fro", "kvmprobe frobnicate --", "kvmprobe frobnicate --level h",
                                "kvmprobe frobnicate --baseline preset:pvm", "kvmprobe frobnicate cr"], tmp_path)
    assert replies["kvmprobe fro"] == ["frobnicate"]
    assert sorted(replies["kvmprobe frobnicate --"]) == ["--baseline", "--help", "--level"]
    assert replies["kvmprobe frobnicate --level h"] == ["high"]
    assert replies["kvmprobe frobnicate --baseline preset:pvm"] == ["pvm-6.18"]
    assert replies["kvmprobe frobnicate cr"] == ["crosvm"]


def test_kinds_are_read_from_the_parser() -> None:
    parser = argparse.ArgumentParser()
    cases = {
        parser.add_argument("--x", choices=("a", "b")): "words:a b",
        parser.add_argument("--host", metavar="FILE", help="a file or preset:NAME"): "host",
        parser.add_argument("--mask", metavar="CAP[,CAP...]"): "caps",
        parser.add_argument("--out", metavar="FILE"): "file",
        parser.add_argument("--n", metavar="N"): "none",
        parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS"): "command",
    }
    for action, kind in cases.items():
        assert build_completion.kind_of(parser, action) == kind, action.dest


def test_readline_completes_the_line_that_runs(script: Path, tmp_path: Path) -> None:
    """Typed into an interactive bash: TAB completes, Enter runs a stand-in ``kvmprobe``."""
    import pty

    typed = {
        "kvmprobe ch\t": ["check"],
        "kvmprobe check cl\t": ["check", "cloud-hypervisor"],
        "kvmprobe has IMMEDIATE_\t": ["has", "IMMEDIATE_EXIT"],
        "kvmprobe check --snapshot preset:linux-3\t": ["check", "--snapshot", "preset:linux-3.10"],
        "kvmprobe has --snapshot=preset:pv\t": ["has", "--snapshot=preset:pvm-6.18"],
        "kvmprobe emulate --mask HLT,IMMEDIATE_E\t": ["emulate", "--mask", "HLT,IMMEDIATE_EXIT"],
    }
    log = tmp_path / "ran"
    stand_in = f"kvmprobe() {{ printf '%s\\x1f' \"$@\" >> {shlex.quote(str(log))}; echo >> {shlex.quote(str(log))}; }}"
    keys = f"source {shlex.quote(str(script))}\n{stand_in}\n" + "".join(line + "\n" for line in typed) + "exit\n"
    assert BASH is not None
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive bash reading the terminal
        os.execve(BASH, [BASH, "--norc", "--noprofile", "-i"],
                  {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb", "PS1": "$ ", "HOME": str(tmp_path)})
    try:
        os.write(fd, keys.encode())
        deadline = time.monotonic() + 60  # a watchdog, not a measurement
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    if not os.read(fd, 65536):
                        break
                except OSError:  # EIO: bash exited and the terminal closed
                    break
        else:
            os.kill(pid, 9)
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    ran = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]
    assert ran == list(typed.values())
