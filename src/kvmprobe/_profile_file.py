"""Read a VMM's requirements from a JSON or TOML file (``check --profile FILE``), strictly.

Imports ``_profile``, ``_validate``, ``_release``, ``_ioctl``, ``caps`` and ``errors``. The file
is untrusted: it is read through ``_validate`` (a regular file, bounded, UTF-8, strict JSON),
and every key is checked; each error is a :class:`~kvmprobe.ProfileError` naming the file and
the key. Public as ``kvmprobe.load_profile`` (and ``kvmprobe.profiles.load_profile``).
"""

from __future__ import annotations

import os

from ._ioctl import KVM_API_VERSION
from ._profile import Profile, Requirement
from ._release import parse_release
from ._validate import TOO_MANY_DIGITS, Checker, clip, described, parse_json, read_text, syntax_error
from .caps import ARCHES, Cap
from .errors import ProfileError, UnknownCapability

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple, Union

__all__ = ["MAX_PROFILE_BYTES", "load_profile"]

#: Profile files larger than this are refused before being read (a real one is a few kB).
MAX_PROFILE_BYTES = 1024 * 1024

_KEYS = (
    "name",
    "display_name",
    "arch",
    "api_version",
    "min_kernel",
    "source",
    "required",
    "optional",
    "conditional",
)
_MANDATORY = ("name", "required")


def load_profile(path: Union[str, "os.PathLike[str]"]) -> Profile:
    """Read a VMM's requirements from a JSON or TOML file.

    The file has ``name`` and ``required`` and may have ``display_name``, ``arch`` (one of
    ``x86_64``, ``aarch64``, ``riscv64``, ``s390x``; absent: any), ``api_version`` (12),
    ``min_kernel`` (a string such as ``"5.10"``), ``source``, and the capability lists
    ``required``, ``optional`` and ``conditional``. Each list is either an array of capability
    names (any spelling ``Cap.lookup`` takes) or a table mapping each name to its text: what it
    is needed for, what degrades without it, or (``conditional``, a table only) when it is
    needed. ``.json`` files are JSON, ``.toml`` files TOML (Python 3.11+, or the ``tomli``
    package); other names are tried as JSON, then TOML.

    Raises:
        ProfileError: the file cannot be read, does not parse, or a key is missing, unknown or
            of the wrong type, a capability name is unknown (with suggestions), a capability
            does not exist on the profile's architecture or is listed twice. The error names the
            file and the key.

    Example:
        >>> import json, os, tempfile
        >>> doc = {"name": "my-vmm", "arch": "x86_64", "required": ["USER_MEMORY", "ImmediateExit"]}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = os.path.join(d, "my-vmm.json")
        ...     with open(path, "w") as f:
        ...         _ = f.write(json.dumps(doc))
        ...     profile = load_profile(path)
        >>> profile.name, [r.cap.c_name for r in profile.required]
        ('my-vmm', ['KVM_CAP_USER_MEMORY', 'KVM_CAP_IMMEDIATE_EXIT'])
    """
    where = os.fspath(path)
    hint = f"give the path of a readable JSON or TOML profile file (at most {MAX_PROFILE_BYTES} bytes)"

    def file_error(message: str, shown: str, why: str) -> ProfileError:
        return ProfileError(message, path=shown, hint=why)

    text = read_text(where, MAX_PROFILE_BYTES, file_error, hint=hint)
    return _Loader(where).profile(_parse(text, where))


def _parse(text: str, where: str) -> Any:
    suffix = os.path.splitext(where)[1].lower()
    if suffix == ".json":
        return _parse_json(text, where)
    if suffix == ".toml":
        return _parse_toml(text, where)
    try:
        return _parse_json(text, where)
    except ProfileError as as_json:
        try:
            return _parse_toml(text, where)
        except ProfileError as as_toml:
            raise ProfileError(
                f"neither JSON ({as_json.message.split(': ', 1)[-1]}) nor TOML ({as_toml.message.split(': ', 1)[-1]})",
                path=where,
                hint="name the file .json or .toml so kvmprobe knows which it is meant to be",
            ) from None


def _parse_json(text: str, where: str) -> Any:
    return parse_json(text, lambda message: ProfileError(message, path=where))


def _parse_toml(text: str, where: str) -> Any:
    import importlib  # only for a TOML profile

    toml: Any = None
    for module in ("tomllib", "tomli"):  # tomllib is in the stdlib from 3.11; tomli is its backport
        try:
            toml = importlib.import_module(module)
            break
        except ImportError:
            continue
    if toml is None:
        raise ProfileError(
            "reading TOML needs Python 3.11+ or the 'tomli' package",
            path=where,
            hint="write the profile as JSON, or pip install tomli",
        )
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as err:  # "Invalid value (at line 1, column 5)"
        import re  # only on this error path

        found = re.fullmatch(r"(.*?)\s*\(at line (\d+), column (\d+)\)", str(err), re.S)
        reason = syntax_error(found.group(1), int(found.group(2)), int(found.group(3))) if found else str(err)
        raise ProfileError(f"not valid TOML: {reason}", path=where) from None
    except ValueError:  # int() of more digits than it converts, raised through the parser
        raise ProfileError(f"not valid TOML: {TOO_MANY_DIGITS}", path=where) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ProfileError("not valid TOML: nested too deeply", path=where) from None


class _Loader(Checker):
    """Checks one parsed profile document; every error names the file and the key."""

    def __init__(self, where: str) -> None:
        super().__init__(lambda key, message, hint: ProfileError(message, path=where, key=key, hint=hint))
        self.where = where

    def profile(self, doc: Any) -> Profile:
        if not isinstance(doc, dict):
            self.fail("", f"expected a table (JSON object) at the top level, got {described(doc)}")
        self.keys(doc, "", _KEYS)
        for key in _MANDATORY:
            if key not in doc:
                self.fail(key, f"missing; every profile needs {' and '.join(_MANDATORY)}")
        name = self.text(doc["name"], "name")
        if not _is_name(name):
            self.fail(
                "name",
                f"expected a short id such as 'my-vmm' (letters, digits, '.', '_', '+', '-'), got {clip(ascii(name))}",
            )
        arch = self.optional_text(doc, "arch")
        if arch is not None and arch not in ARCHES:
            import difflib  # only on this error path

            close = difflib.get_close_matches(arch, ARCHES, n=1, cutoff=0.4)
            self.fail(
                "arch",
                f"expected one of {', '.join(ARCHES)}, got {clip(ascii(arch))}",
                (f"did you mean '{close[0]}'? " if close else "") + "use the 'uname -m' spelling, or leave arch out for any",
            )
        api = doc.get("api_version", KVM_API_VERSION)
        if isinstance(api, bool) or not isinstance(api, int) or api != KVM_API_VERSION:
            self.fail(
                "api_version",
                f"expected {KVM_API_VERSION}, the KVM API version every Linux since 2.6.22 reports, got {described(api)}",
                f"leave api_version out, or set it to {KVM_API_VERSION}",
            )
        min_kernel = doc.get("min_kernel")
        if min_kernel is not None and not (
            isinstance(min_kernel, str) and parse_release(min_kernel, exact=True) is not None
        ):
            self.fail(
                "min_kernel",
                f'expected a release string such as "5.10", got {described(min_kernel)}',
                "quote the release: a number would turn 5.10 into 5.1",
            )
        seen: dict[Cap, str] = {}
        requirements: List[Requirement] = []
        for kind in ("required", "optional", "conditional"):
            if kind not in doc:
                continue
            for cap, text, key in self.caps(doc[kind], kind):
                if cap in seen:
                    self.fail(key, f"{cap.c_name} is listed twice (also in {seen[cap]})")
                if arch is not None and not cap.applies_to(arch):
                    self.fail(key, f"{cap.c_name} exists on {', '.join(sorted(cap.arches))} only, not on {arch}")
                seen[cap] = kind
                requirements.append(Requirement(cap, kind, text))
        return Profile(
            name=name,
            display_name=self.optional_text(doc, "display_name") or name,
            arch=arch,
            requirements=tuple(requirements),
            api_version=api,
            min_kernel=min_kernel,
            source=self.optional_text(doc, "source") or "",
            path=self.where,
        )

    def optional_text(self, doc: Any, key: str) -> Optional[str]:
        value = doc.get(key)
        return None if value is None else self.text(value, key, whitespace=True)

    def caps(self, value: Any, kind: str) -> List[Tuple[Cap, str, str]]:
        """``(cap, text, key)`` for each entry of an array of names or a table of name -> text."""
        items: List[Tuple[Any, str, str]] = []
        if isinstance(value, list) and kind != "conditional":
            items = [(entry, "", f"{kind}[{index}]") for index, entry in enumerate(value)]
        elif isinstance(value, dict):
            for entry, text in value.items():
                key = f"{kind}.{entry}"
                if not isinstance(text, str) or (kind == "conditional" and not text.strip()):
                    what = "the condition under which it is needed" if kind == "conditional" else 'a text (or "")'
                    self.fail(key, f"expected a string: {what}, got {described(text)}")
                self.text(text, key, empty=True, whitespace=True)
                items.append((entry, text, key))
        else:
            shape = (
                "a table of capability name = condition"
                if kind == "conditional"
                else "an array of capability names, or a table of name = text"
            )
            self.fail(kind, f"expected {shape}, got {described(value)}")
        found: List[Tuple[Cap, str, str]] = []
        for entry, text, key in items:
            if isinstance(entry, bool) or not isinstance(entry, (str, int)):
                self.fail(key, f"expected a capability name, got {described(entry)}")
            try:
                cap = Cap.lookup(entry)
            except UnknownCapability as err:
                self.fail(key, err.message, err.hint)
            found.append((cap, text, key))
        return found


def _is_name(name: str) -> bool:
    """A short id: an ASCII letter or digit, then letters, digits, ``.``, ``_``, ``+``, ``-``."""
    import re

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name, re.ASCII) is not None
