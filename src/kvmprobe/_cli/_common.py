"""What every command shares: exit codes, the error line, where results come from, output.

Imports ``probing``, ``presets``, ``caps``, ``errors``, ``atomic``, ``_backend`` and ``_version``.
"""

from __future__ import annotations

import os
import sys

from ..errors import BackendUnavailable, KvmProbeError, KvmUnavailable
from ..probing import ProbeResult, probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Tuple

    from .._backend import Backend

EXIT_OK = 0  # yes / ready / equal
EXIT_NO = 1  # no / not ready / different
EXIT_USAGE = 2  # bad arguments or bad input file
EXIT_UNAVAILABLE = 3  # KVM could not be reached where the command needed the live device


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


#: ``--device`` and ``--snapshot`` (:func:`add_source_arguments`), for :func:`quick_args`.
SOURCE_OPTIONS = {"--device": "device", "--snapshot": "snapshot"}


def quick_args(
    command: str,
    words: List[str],
    run: Callable[[argparse.Namespace], int],
    *,
    flags: Mapping[str, str] = {},
    valued: Mapping[str, str] = SOURCE_OPTIONS,
    appended: Mapping[str, str] = {},
    positional: Optional[str] = None,
    required: bool = False,
) -> Optional[argparse.Namespace]:
    """What argparse makes of ``words`` for ``command``, when they are plain; else ``None``.

    Reading a command line with argparse costs about as much as the rest of a short command (it
    imports ``re``, ``gettext`` and ``locale``, issue #19), so the commonest commands read plain
    words themselves: the ``flags`` (``store_true``), options that take one value (``valued``, as
    ``--opt VALUE`` or ``--opt=VALUE``; ``appended`` ones collect every use), and one run of
    ``positional`` words (``nargs="+"`` when ``required``, else ``"*"``). Anything else (help, an
    abbreviation, ``--``, a value that starts with ``-``, a second run of positional words, which
    argparse refuses) gives ``None``: argparse then reads the line, and words it refuses are
    refused as they always were. ``tests/unit/test_cli.py`` compares both readings per command.
    The option tables are the command's own ``register`` ones: the same option strings and dests.

    Example:
        >>> args = quick_args("dump", ["--json", "--device=/dev/kvm"], lambda args: 0, flags={"--json": "json"})
        >>> args.json, args.device, args.snapshot, args.command
        (True, '/dev/kvm', None, 'dump')
        >>> quick_args("dump", ["--js"], lambda args: 0, flags={"--json": "json"}) is None
        True
    """
    from types import SimpleNamespace

    found: Dict[str, Any] = {dest: False for dest in flags.values()}
    found.update((dest, None) for dest in valued.values())
    found.update((dest, []) for dest in appended.values())
    words_seen: List[str] = []
    runs = 0
    previous_positional = False
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-"):
            if positional is None:
                return None
            if not previous_positional:
                runs += 1
            previous_positional = True
            words_seen.append(word)
            continue
        previous_positional = False
        option, equals, given = word.partition("=")
        if word in flags:
            found[flags[word]] = True
        elif option in valued or option in appended:
            if not equals:
                if index == len(words) or words[index].startswith("-"):
                    return None
                given = words[index]
                index += 1
            if option in valued:
                found[valued[option]] = given
            else:
                found[appended[option]].append(given)
        else:
            return None
    if runs > 1 or (required and not words_seen):
        return None
    if positional is not None:
        found[positional] = words_seen
    made: argparse.Namespace = SimpleNamespace(command=command, **found, func=run)  # type: ignore[assignment]
    return made


#: The longest time limit a command takes: a day, as ``run --time-limit`` (``guest.MAX_TIME_LIMIT``).
MAX_SECONDS = 86400.0


def seconds(flag: str, value: Optional[float], *, maximum: float = MAX_SECONDS) -> Optional[float]:
    """``value`` (from ``--flag SECONDS``) when it is a finite number above 0 and at most
    ``maximum``; else :class:`UsageError`, before any program starts. ``None`` stays ``None``.

    argparse's ``type=float`` takes ``nan``, ``inf`` and ``1e300``; a child's wait turns each into a
    traceback after the child has started (``OverflowError``, ``ValueError``).

    Example:
        >>> seconds("--timeout", 2.5), seconds("--timeout", None)
        (2.5, None)
        >>> seconds("--timeout", float("nan"))
        Traceback (most recent call last):
        ...
        kvmprobe._cli._common.UsageError: --timeout nan: expected a positive number of seconds (hint: give e.g. --timeout 30)
    """
    if value is None:
        return None
    if not 0 < value <= maximum:  # nan compares false: refused here too
        bound = "" if value != value or value <= 0 else f" and at most {maximum:g} (a day)"
        raise UsageError(f"{flag} {value:g}: expected a positive number of seconds{bound} (hint: give e.g. {flag} 30)")
    return value


def exit_code_for(err: KvmProbeError) -> int:
    """3 when KVM itself could not be used, else 2 (bad input: a name, a file, a backend)."""
    if isinstance(err, KvmUnavailable) and not isinstance(err, BackendUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_USAGE


def with_hint(message: str, words: List[str]) -> str:
    """``message`` as it is when it carries a hint, else with the one every command has: its help.

    Example:
        >>> with_hint("--guest-memory '4Q' is no size", ["check", "tdx"])
        "--guest-memory '4Q' is no size (hint: see 'kvmprobe check --help')"
    """
    if "(hint: " in message:
        return message
    command = f"kvmprobe {words[0]}" if words and not words[0].startswith("-") else "kvmprobe"
    return f"{message} (hint: see '{command} --help')"


#: An error line longer than this is cut in the middle (a message may quote megabytes of input).
MAX_ERROR_LINE = 2000


def fail(message: str, code: int) -> int:
    """Print one ``kvmprobe: error: ...`` line on stderr and return ``code``.

    The line is made safe for a terminal: whitespace runs become one space, and characters
    that are not printable (escape sequences quoted from bad input, lone surrogates from a
    file name that is not UTF-8) are shown escaped, as ``\\x1b``; a byte of such a file name as
    itself (``\\xff``, as ``ls -b`` shows it), not as the surrogate Python holds it in.
    """
    text = " ".join(message.split())
    text = "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)
    if "\\udc" in text:  # a repr() in the message escaped such a byte already, as \udcff
        import re

        text = re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", text)
    if len(text) > MAX_ERROR_LINE:
        half = MAX_ERROR_LINE // 2
        text = f"{text[:half]} [...] {text[-half:]}"
    print(f"kvmprobe: error: {text}", file=sys.stderr)
    return code


def _escaped(ch: str) -> str:
    """A character that is not printable, backslash-escaped: a byte argv could not decode
    (PEP 383 holds byte 0xNN as U+DCNN) as that byte, ``\\xff``; anything else as ``ascii()``."""
    if "\udc80" <= ch <= "\udcff":
        return f"\\x{ord(ch) - 0xDC00:02x}"
    return ascii(ch)[1:-1]


def _backslash_bytes(err: UnicodeError) -> Tuple[str, int]:
    """The error handler of :func:`tolerant_streams`: ``backslashreplace``, but a byte argv could
    not decode (U+DC80..U+DCFF) is shown as that byte (``\\xff``), not ``\\udcff``."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return "".join(_escaped(ch) for ch in err.object[err.start:err.end]), err.end


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` or ``--snapshot``: which host a command looks at."""
    parser.add_argument(
        "--device", metavar="PATH", help="the KVM device (default: $KVMPROBE_DEVICE or /dev/kvm)"
    )
    parser.add_argument(
        "--snapshot",
        metavar="FILE",
        help="read a recorded host instead of the live one: a file written by 'kvmprobe snapshot', "
        "or preset:NAME (see 'kvmprobe snapshot --list-presets')",
    )


def load_host(spec: str) -> ProbeResult:
    """A recorded host named on the command line: ``preset:NAME`` or a snapshot file path."""
    from ..presets import load_recorded

    result = load_recorded(spec)
    if result.unknown:
        names = ", ".join(f"{row['name']} ({row['number']})" for row in result.unknown)
        print(
            f"kvmprobe: note: {spec} has {len(result.unknown)} "
            f"{'capability' if len(result.unknown) == 1 else 'capabilities'} this kvmprobe does not know: "
            f"{names}; they are kept but not used (upgrade kvmprobe to use them)",
            file=sys.stderr,
        )
    if result.not_recorded:
        print(f"kvmprobe: note: {not_recorded_note(spec, result)}", file=sys.stderr)
    release = result.host.kernel_release if result.host is not None else ""
    if release and release != result.kernel:  # a collector run with --root, or an edited file
        print(f"kvmprobe: note: {spec} says two kernels: its capabilities were answered by {result.kernel} "
              f"($.kernel), its host facts are of {release} ($.host.kernel_release); what follows mixes both",
              file=sys.stderr)
    return result


def not_recorded_note(spec: str, result: ProbeResult) -> str:
    """Which capability rows a recording lacks, and why that may be: not recorded, not unsupported."""
    from .._version import __version__
    from ..caps import Cap

    missing = [cap.c_name for cap in Cap if cap in result.not_recorded]
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    rows = f"{len(missing)} capability {'row' if len(missing) == 1 else 'rows'}"
    if result.recorded_by == __version__:
        why = f"{spec} is incomplete: it lacks {rows} this kvmprobe {__version__}, which wrote it, always writes"
    else:
        why = f"{spec} lacks {rows} this kvmprobe knows (kvmprobe {result.recorded_by or 'of unknown version'} wrote it)"
    return f"{why}: {shown}; they are not recorded, neither supported nor unsupported"


#: Flags (dest, spelling) that act on the live device, refused with --snapshot by :func:`load_result`.
LIVE_ONLY = (("vm", "--vm"), ("create_vm", "--create-vm"))


def load_result(args: argparse.Namespace, *, vm: bool = False, cpu: bool = False) -> ProbeResult:
    """The probe result a command works on: the recorded host of ``--snapshot``, else a probe
    (with ``cpu``, one that also asks KVM's CPU questions)."""
    snapshot = getattr(args, "snapshot", None)
    if snapshot is not None:
        if getattr(args, "device", None) is not None:
            raise UsageError("--device and --snapshot exclude each other: a recorded host has no device to open "
                             "(hint: give one of them)")
        for dest, flag in LIVE_ONLY:
            if getattr(args, dest, False) is True:  # it would be ignored: say so rather than answer without it
                raise UsageError(f"{flag} creates VMs on this host's KVM; a recorded host (--snapshot) keeps what it "
                                 f"recorded (hint: leave out {flag}, or leave out --snapshot to ask the live host)")
        return load_host(snapshot)
    return probe(getattr(args, "device", None), vm=vm, backend=backend_of(args), cpu=cpu)


def where_from(result: ProbeResult) -> str:
    """Where a host's answers came from: its device (and recording), or none for a host
    synthesized from the capability table or derived from a kernel's source."""
    if result.synthesized or result.derivation is not None:
        return f"no device: {result.source}"
    return result.device if result.source == "live" else f"{result.device}, recorded: {result.source}"


def backend_of(args: argparse.Namespace) -> Optional[Backend]:
    """The ioctl backend ``main(backend=...)`` was given (tests inject fakes), else ``None``."""
    backend: Optional[Backend] = getattr(args, "backend", None)
    return backend


def tolerant_streams() -> None:
    """Let stdout/stderr print any path: a file name that is not valid UTF-8 (argv carries it
    as lone surrogates) is shown backslash-escaped instead of failing the whole command."""
    import codecs  # loaded at start-up by the interpreter already

    codecs.register_error("kvmprobe.backslash_bytes", _backslash_bytes)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            reconfigure(errors="kvmprobe.backslash_bytes")
        except (ValueError, OSError):  # a closed or exotic stream: leave it as it is
            pass


class ClosedPipeGuard:
    """A text stream whose writes survive a reader that went away (``kvmprobe ... | head``), a
    stream that was closed before kvmprobe started (``>&-``: Python's ``sys.stdout`` is ``None``)
    and a device that is full (``>/dev/full``: ENOSPC) or failing (EIO).

    The first failed write ends the output: the rest is dropped and the command carries on to
    its verdict, which is its exit code (a closed pipe must not turn a "no" into a "yes"). A
    closed pipe or a closed stream is said nothing about; any other error on standard output is
    said once, on stderr (the output is incomplete, and a full disk is worth knowing). The
    stream's fd is pointed at ``/dev/null`` then, so what it still buffers does not fail again
    when Python flushes it at exit ("Exception ignored ...", exit 120): the recipe of the Python
    docs' "Note on SIGPIPE" (signal module).
    """

    def __init__(self, stream: Optional[IO[str]], name: str = "standard output") -> None:
        self.stream = stream
        self.name = name
        self.gone = stream is None

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)  # type: ignore[union-attr]  # not gone: a stream
            except OSError as err:
                self._drop(err)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()  # type: ignore[union-attr]  # not gone: a stream
            except OSError as err:
                self._drop(err)

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()  # type: ignore[union-attr]  # not gone: a stream

    def _drop(self, err: OSError) -> None:
        self.gone = True
        stream: Any = self.stream
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):  # no fd (a StringIO): nothing to redirect
            fd = None
        if fd is not None:
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)  # ownership: closed just below
            try:
                os.dup2(devnull, fd)  # the stream's fd now leads nowhere; dup2 keeps it inheritable
            finally:
                os.close(devnull)
            try:
                stream.flush()  # what is left in the buffer goes to /dev/null now
            except OSError:
                pass
        if not isinstance(err, BrokenPipeError) and sys.stderr is not self:
            # Said on stderr (itself guarded: a closed or full stderr drops it too).
            sys.stderr.write(f"kvmprobe: error: cannot write to {self.name}: {err.strerror or err}; "
                             "the output is incomplete (the exit code is still the verdict)\n")

    def __getattr__(self, name: str) -> Any:  # encoding, fileno(), ...: the stream's own
        if self.stream is None:
            raise AttributeError(f"{self.name} is closed: no {name}")
        return getattr(self.stream, name)


def guard_streams() -> Any:
    """Replace ``sys.stdout``/``sys.stderr`` with a :class:`ClosedPipeGuard` each; return what to restore."""
    saved = (sys.stdout, sys.stderr)
    sys.stdout = ClosedPipeGuard(sys.stdout)
    sys.stderr = ClosedPipeGuard(sys.stderr, "standard error")
    return saved


def restore_streams(saved: Any) -> None:
    """Flush the guarded streams (a closed pipe is dropped silently) and put ``saved`` back."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    sys.stdout, sys.stderr = saved


def use_color(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _unwritable(path: str, err: BaseException, option: str = "-o", dash: str = "standard output") -> UsageError:
    from ..errors import write_failure

    message, hint = write_failure(path, err, option=option, dash=dash)
    return UsageError(f"{message} (hint: {hint})")


def check_output(path: Optional[str], *, option: str = "-o", dash: str = "standard output") -> None:
    """Refuse ``-o PATH`` up front when it is empty or something other than a regular file stands
    there, a symbolic link included (before a long run, such as 'learn', would end in nothing
    written). ``-`` is ``dash``: stdout for ``-o``; ``option`` and ``dash`` word the hint."""
    if path is None or path == "-":
        return
    if not path:
        raise _unwritable(path, FileNotFoundError(2, "empty path"), option, dash)
    from ..atomic import check_target

    try:
        check_target(path)
    except OSError as err:
        raise _unwritable(path, err, option, dash) from None


def write_output(path: str, text: str, *, option: str = "-o", dash: str = "standard output") -> None:
    """Replace ``path`` with ``text`` atomically (a regular file or nothing only), or UsageError
    worded as every command words a write failure (:func:`kvmprobe.errors.write_failure`)."""
    from ..atomic import write_atomic

    try:
        write_atomic(path, text)
    except (OSError, ValueError) as err:  # ValueError: a NUL or an unencodable surrogate in the path
        raise _unwritable(path, err, option, dash) from None


def write_json(document: Any, stream: Optional[IO[str]] = None) -> None:
    """Write ``document`` as indented JSON with a trailing newline."""
    import json

    out = stream or sys.stdout
    out.write(json.dumps(document, indent=2) + "\n")
