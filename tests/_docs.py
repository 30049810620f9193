"""Running the code blocks of README.md and the pages under docs/ the way a reader would, for the
tests that hold each page's output against a real run. This module owns the block syntax, the
output fence and what may differ between runs; the page tests only say where a page runs.

``console`` blocks are ``$ COMMAND`` lines, each followed by what it prints (stdout and stderr
together, as a terminal shows them); they run in bash in a scratch directory where
``examples/``, ``benches/`` and ``scripts/`` are the repository's and ``python`` is this
interpreter. A ``python`` block may be followed by a plain (or ``text``) block with what it
prints. A block whose preceding line is ``<!-- this machine -->`` shows this development
machine's live answers: it runs only where :func:`why_not_the_recorded_machine` says this is
that machine. A refresher that rewrites a page's output re-runs its console commands through
:func:`scratch` and :func:`run_console` in one directory, so every ``$`` line must be
self-contained within its page, in order.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- this machine -->"
# What a python block prints: the plain or ``text`` block right after it.
OUTPUT_FENCE = r"```(?:text)?\n(.*?)```"
_BLOCK = re.compile(r"```(console|python)\n(.*?)```(?:\n\s*" + OUTPUT_FENCE + ")?", re.S)

# What truly differs from run to run of the same command on the same machine: recording times,
# durations and the ratios measured from them, sample counts of a timed median, pytest's
# run time, the guest CPUID registers a PVM guest sees changed (they move with the vCPU).
VARIES: Tuple[Tuple[str, str], ...] = (
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", "<time>"),
    (r"\d[\d,]*(?:\.\d+)? ?(?:ns|µs|us|ms|s)\b", "<t>"),
    (r"\b\d[\d,]*(?:\.\d+)?x\b", "<n>x"),
    (r"median of \d+", "median of <n>"),
    (r"\(\d+ registers differ\)", "(<n> registers differ)"),
)


class Block(NamedTuple):
    kind: str  # "console" or "python"
    body: str
    live: bool  # marked <!-- this machine -->
    expected: Optional[str]  # a python block's shown output, if the page shows it


def blocks(text: str) -> List[Block]:
    """Every ``console`` and ``python`` block of a page, in order."""
    found: List[Block] = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()[-1:]
        found.append(Block(match.group(1), match.group(2), before == [MARK], match.group(3)))
    return found


def console_steps(text: str) -> List[Tuple[str, List[str]]]:
    """``(command, shown output lines)`` for every ``$`` line of the page's console blocks."""
    steps: List[Tuple[str, List[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        steps.extend(_steps(block))
    return steps


def _steps(block: str) -> List[Tuple[str, List[str]]]:
    steps: List[Tuple[str, List[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def python_examples(text: str) -> List[Tuple[str, str]]:
    """``(code, shown output)`` for every python block followed by its output block."""
    return [(block.body, block.expected) for block in blocks(text) if block.kind == "python" and block.expected is not None]


def scratch(where: Path) -> Dict[str, str]:
    """Make ``where`` a reader's directory; return the environment to run commands in.

    ``examples/``, ``benches/`` and ``scripts/`` are the repository's; ``python``, ``python3``
    and ``kvmprobe`` are this interpreter and its kvmprobe, ``python2.7`` and ``python3.6`` the
    old Pythons where there are some; ``$HOME`` is a scratch home whose ``.local/bin`` is on
    PATH (what a page installs stays there); no kvmprobe variable of the caller's leaks in, and
    man pages render 80 columns wide to standard output."""
    from _packaging import interpreter

    for tree in ("examples", "benches", "scripts"):
        (where / tree).symlink_to(ROOT / tree)
    bin_dir = where / "bin"
    bin_dir.mkdir()
    home = where / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    commands = {"python": sys.executable, "python3": sys.executable, "kvmprobe": f"{sys.executable} -m kvmprobe"}
    for version in ("2.7", "3.6"):
        found = interpreter(version)
        if found is not None:
            commands[f"python{version}"] = found
    for name, target in commands.items():
        script = bin_dir / name  # a script, not a symlink: a venv is found from the interpreter's own path
        script.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        script.chmod(0o755)
    env = {key: value for key, value in os.environ.items()
           if key not in ("KVMPROBE_BACKEND", "KVMPROBE_DEVICE", "MANPATH", "XDG_DATA_HOME")}  # fmt: skip
    env.update(HOME=str(home), PATH=f"{bin_dir}:{home / '.local' / 'bin'}:{os.environ.get('PATH', '')}",
               PYTHONUNBUFFERED="1", NO_COLOR="1", MANWIDTH="80", LANG="C.UTF-8", MANPAGER="cat", PAGER="cat")
    return env


def run_console(command: str, where: Path, env: Dict[str, str], timeout: float = 300) -> List[str]:
    done = subprocess.run(["bash", "-c", command], cwd=where, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return done.stdout.splitlines()


def normal(lines: Sequence[str], rules: Sequence[Tuple[str, str]] = ()) -> List[str]:
    """The lines with trailing blanks dropped, what :data:`VARIES` and each of the page's own
    ``(pattern, replacement)`` applied."""
    out = []
    for line in lines:
        for pattern, replacement in (*rules, *VARIES):
            line = re.sub(pattern, replacement, line)
        out.append(line.rstrip())
    return out


Check = Callable[[str, List[str], List[str]], None]


def why_not_the_recorded_machine() -> Optional[str]:
    """Why this machine is not the one the ``pvm-6.18`` preset recorded (the one a page's
    ``<!-- this machine -->`` blocks show), or ``None`` when it is: the same kernel, the same KVM
    CPUID once volatile fields are cleared, the same TSC rate and feature MSRs."""
    import kvmprobe
    from kvmprobe.presets import load_preset

    if platform.machine() != "x86_64":
        return f"the page shows an x86_64 host; this is {platform.machine()}"
    preset = load_preset("pvm-6.18").cpu
    live = kvmprobe.cpu(refresh=True).record
    if preset is None or live is None:
        return "no CPU data to compare"
    if load_preset("pvm-6.18").kernel != os.uname().release:
        return "the page shows the kernel build the pvm-6.18 preset recorded; this is another one"
    same = (preset.normalized(), preset.tsc_khz, preset.feature_msrs) == (live.normalized(), live.tsc_khz, live.feature_msrs)
    return None if same else "this machine's KVM answers differ from the recording the page shows"


def run_blocks(text: str, where: Path, env: Dict[str, str], rules: Sequence[Tuple[str, str]] = (),
               timeout: float = 300) -> Tuple[int, Optional[str]]:
    """Run every block of a page in order in ``where`` (made by :func:`scratch`) and hold what
    each prints against the page. Returns how many commands and programs were compared and,
    when the page has ``<!-- this machine -->`` blocks and this is not that machine, why they
    were left out."""
    found = blocks(text)
    skip = why_not_the_recorded_machine() if any(block.live for block in found) else None
    compared = 0
    for block in found:
        if block.live and skip is not None:
            continue
        if block.kind == "python":
            done = subprocess.run([sys.executable, "-c", block.body], cwd=where, env=env, capture_output=True,
                                  text=True, timeout=timeout)  # fmt: skip
            assert done.returncode == 0, (block.body, done.stderr[-3000:])
            if block.expected is not None:
                got, shown = normal(done.stdout.splitlines(), rules), normal(block.expected.splitlines(), rules)
                assert got == shown, (block.body, got, shown)
            compared += 1
            continue
        for command, lines in _steps(block.body):
            got, shown = normal(run_console(command, where, env, timeout), rules), normal(lines, rules)
            assert got == shown, (command, got, shown)
            compared += 1
    return compared, skip
