"""Find the VMMs installed here and ask each for its release: the one room that runs programs.

Imports ``_vmm_requirements``, ``_vmm_versions`` and ``_stop`` (a query past its time limit). Binaries are looked for under the names
each VMM's data gives (``qemu-system-<arch>``, ``cloud-hypervisor``, ``firecracker``, ``crosvm``,
``runsc``, ``qemu-kvm``) in the directories of ``PATH`` and the usual places PATH may miss
(:data:`USUAL_DIRS`: ``/usr/libexec`` for RHEL's ``qemu-kvm``, ``/opt/kata/bin`` for Kata's
bundled VMMs); libkrun, a library, is found by its file name in the library directories and
never run. What is run is exactly ``<binary> <the VMM's version query>`` (``--version``;
``crosvm version``): no shell, no input, a minimal environment, in a session of its own that is
killed after :data:`TIME_LIMIT` seconds, reading at most :data:`OUTPUT_LIMIT` bytes. A file is
run only when it is a regular executable file, not set-user-ID or set-group-ID, owned by root
or by the caller, and neither it nor its directory writable by others (anyone could have put
something else there); only absolute ``PATH`` entries are searched (an empty or relative one
would mean the current directory). Nothing else is ever run.
"""

from __future__ import annotations

import os
import re
import select
import stat
import subprocess
import time

from ._stop import stop
from ._vmm_requirements import ENTRIES, VMMS, Vmm
from ._vmm_versions import parse_version, spelled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple
else:
    from ._value import NamedTuple

__all__ = ["LIBRARY_DIRS", "OUTPUT_LIMIT", "TIME_LIMIT", "USUAL_DIRS", "Installed", "find_installed", "version_of"]

#: Where binaries are looked for besides ``PATH``: system directories a service's PATH may
#: lack, RHEL's ``/usr/libexec/qemu-kvm``, and Kata Containers' bundled VMMs.
USUAL_DIRS = ("/usr/local/bin", "/usr/bin", "/usr/local/sbin", "/usr/sbin", "/usr/libexec", "/opt/kata/bin")
#: Where libkrun is looked for (``{arch}``: the machine).
LIBRARY_DIRS = ("/usr/local/lib64", "/usr/local/lib", "/usr/lib64", "/usr/lib", "/usr/lib/{arch}-linux-gnu")
#: Seconds a version query may take before its whole session is killed.
TIME_LIMIT = 5.0
#: Bytes of a version query's output read (a real one prints well under 200).
OUTPUT_LIMIT = 4096


class Installed(NamedTuple):
    """One VMM binary (or library) found here and the release it reported.

    ``output`` is the first line it printed (or the library's file name); ``version`` the
    release as the VMM spells it, ``None`` when it could not be read, and then ``problem``
    says why.
    """

    vmm: str
    path: str
    output: str
    version: Optional[str]
    problem: str = ""


def _candidates(vmm: Vmm, arch: str, dirs: Sequence[str]) -> List[str]:
    found = []
    for name in vmm.programs:
        program = name.replace("{arch}", arch)
        for folder in dirs:
            path = os.path.join(folder, program)
            if os.path.isfile(path):
                found.append(path)
    return found


def _libraries(vmm: Vmm, arch: str, dirs: Sequence[str]) -> List[Tuple[str, str]]:
    """``(path, release)`` of each file whose name is the library's, with its release."""
    found = []
    pattern = re.compile(vmm.library)
    for folder in dirs:
        folder = folder.replace("{arch}", arch)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            match = pattern.fullmatch(name)
            path = os.path.join(folder, name)
            if match and os.path.isfile(path) and not os.path.islink(path):
                found.append((path, match.group(1)))
    return found


def _refusal(path: str) -> str:
    """Why ``path`` must not be run, or ``""``."""
    try:
        info = os.stat(path)
        folder = os.stat(os.path.dirname(os.path.realpath(path)))
    except OSError as err:
        return f"cannot stat it: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        return "not run: it is set-user-ID or set-group-ID"
    if info.st_mode & stat.S_IWOTH:
        return "not run: anyone may write to it"
    if folder.st_mode & stat.S_IWOTH:
        return "not run: anyone may write to its directory"
    if info.st_uid not in (0, os.geteuid()):
        return f"not run: owned by uid {info.st_uid}, neither root nor this user"
    if not os.access(path, os.X_OK):
        return "not executable by this user"
    return ""


def _first_line(path: str, query: Sequence[str], limit: float) -> Tuple[str, str]:
    """The first non-empty line ``path query`` prints, and why there is none (``""``: there is)."""
    argv = [path, *query]
    env = {"PATH": os.defpath, "LC_ALL": "C"}
    try:
        # Popen owns the pipe and closes it when the with-block ends; the child gets no other fd.
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, close_fds=True, start_new_session=True) as process:
            assert process.stdout is not None
            out, finished = _read_bounded(process.stdout.fileno(), time.monotonic() + limit)
            if not finished:
                stop(process, group=True)  # its session: children it started go too
                return "", f"no answer within {limit:g} s: stopped"
            try:
                process.wait(timeout=max(0.1, limit))
            except subprocess.TimeoutExpired:
                stop(process, group=True)  # its session: children it started go too
                return "", f"did not exit within {limit:g} s: stopped"
    except OSError as err:
        return "", f"cannot run it: {err.strerror}"
    text = out.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200], ""
    return "", f"printed nothing for '{' '.join(query)}'"


def _read_bounded(fd: int, deadline: float) -> Tuple[bytes, bool]:
    """Up to :data:`OUTPUT_LIMIT` bytes from ``fd`` until EOF; ``False`` if time ran out first."""
    chunks: List[bytes] = []
    size = 0
    while size < OUTPUT_LIMIT:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, OUTPUT_LIMIT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), True


def version_of(vmm: str, path: str, *, limit: float = TIME_LIMIT) -> Installed:
    """Ask the binary ``path`` of VMM ``vmm`` for its release, with its version query only.

    Example:
        >>> version_of("qemu", "/nonexistent/qemu-system-x86_64")
        Installed(vmm='qemu', path='/nonexistent/qemu-system-x86_64', output='', version=None, problem='cannot stat it: No such file or directory')
    """
    info = VMMS[vmm]
    refused = _refusal(path)
    if refused:
        return Installed(vmm, path, "", None, refused)
    line, problem = _first_line(path, info.query, limit)
    if problem:
        return Installed(vmm, path, line, None, problem)
    match = re.match(info.output, line)
    version = parse_version(match.group(1), info.prefixes) if match else None
    if match is None or version is None:
        return Installed(vmm, path, line, None, f"this is not how {info.display_name} reports its release")
    return Installed(vmm, path, line, spelled(version, info.prefixes[0]))


def find_installed(
    arch: str,
    *,
    path: Optional[str] = None,
    dirs: Sequence[str] = USUAL_DIRS,
    library_dirs: Sequence[str] = LIBRARY_DIRS,
    limit: float = TIME_LIMIT,
) -> List[Installed]:
    """Every VMM with a built-in profile for ``arch`` found here, with the release each reported.

    ``path`` is the search path (default ``$PATH``), searched before ``dirs``; a binary reached
    twice (a symbolic link, a directory listed twice) is asked once.

    Example:
        >>> import tempfile
        >>> find_installed("x86_64", path="", dirs=[tempfile.mkdtemp()], library_dirs=[])
        []
    """
    search = [d for d in (os.environ.get("PATH", os.defpath) if path is None else path).split(os.pathsep)
              if os.path.isabs(d)]
    search += [d for d in dirs if d not in search]
    seen: Dict[str, Installed] = {}
    found: List[Installed] = []
    for name in dict.fromkeys(e.vmm for e in ENTRIES if e.arch == arch):
        vmm = VMMS[name]
        if vmm.library:
            for where, release in _libraries(vmm, arch, library_dirs):
                version = parse_version(release, vmm.prefixes)
                if version is not None and os.path.realpath(where) not in seen:
                    item = Installed(name, where, os.path.basename(where), spelled(version, vmm.prefixes[0]))
                    seen[os.path.realpath(where)] = item
                    found.append(item)
            continue
        for candidate in _candidates(vmm, arch, search):
            real = os.path.realpath(candidate)
            if real in seen:
                continue
            item = version_of(name, candidate, limit=limit)
            seen[real] = item
            found.append(item)
    return found
