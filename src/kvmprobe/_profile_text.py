"""Write a VMM profile document (the keys ``load_profile`` reads) as TOML or JSON text.

Imports nothing from the package. The standard library reads TOML (``tomllib``) but does not
write it; a profile is flat enough to write here: top-level strings and integers, then one
table per capability list, each a capability name mapped to a string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

__all__ = ["profile_text", "toml_string"]


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and control characters escaped.

    (``json.dumps`` is close, but writes characters outside the BMP as surrogate pairs, which
    TOML does not allow.)

    Example:
        >>> print(toml_string('say "hi"\\tnow \\U0001F600'))
        "say \\"hi\\"\\u0009now \U0001F600"
    """
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def profile_text(document: Mapping[str, object], fmt: str, comments: Sequence[str] = ()) -> str:
    """The document as ``"toml"`` (``comments`` on top, as ``#`` lines) or ``"json"`` text.

    Keys whose value is ``None`` are left out. Mappings become tables (TOML) or objects (JSON).

    Example:
        >>> print(profile_text({"name": "vmm", "api_version": 12, "required": {"KVM_CAP_HLT": "halting"}}, "toml"), end="")
        name = "vmm"
        api_version = 12
        <BLANKLINE>
        [required]
        KVM_CAP_HLT = "halting"
    """
    present = {key: value for key, value in document.items() if value is not None}
    if fmt == "json":
        return json.dumps(present, indent=2, ensure_ascii=False) + "\n"
    if fmt != "toml":
        raise ValueError(f"unknown profile format {fmt!r}")
    lines = [f"# {line}" for line in comments]
    tables = []
    for key, value in present.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"{key}: a profile holds strings and integers, not {type(value).__name__}")
        else:
            lines.append(f"{key} = {value}" if isinstance(value, int) else f"{key} = {toml_string(value)}")
    for key, table in tables:
        lines += ["", f"[{key}]"]
        lines += [f"{name} = {toml_string(str(text))}" for name, text in table.items()]
    return "\n".join(lines) + "\n"
