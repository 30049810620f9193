"""Validate untrusted input, in one place: files anyone can name, and the documents in them.

Imports ``_files`` and ``errors``. Snapshots, the host facts they carry, a fake host's node
file and custom VMM profiles all come from paths a user (or a hostile file) chooses. Each of
their readers reads through :func:`read_text` (only a regular file, bounded, UTF-8), parses
JSON through :func:`parse_json` (strict: no duplicate keys, no NaN, bounded nesting and digits),
and checks fields with a :class:`Checker`, whose errors are the caller's own exception type
naming the file and the field. Words for what was found come from :func:`described`; text
that would act on a terminal is refused by :func:`unprintable`. Nothing here prints.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

from ._files import FileRefused, read_limited
from ._value import Shared
from .errors import describe_errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, NoReturn, Optional, Sequence, Set, Tuple

    #: Makes the caller's exception for a bad field: ``(field, message, hint)``.
    ErrorMaker = Callable[[str, str, str], Exception]

    #: Makes the caller's exception for a file that cannot be used: ``(message, path shown, hint)``.
    FileErrorMaker = Callable[[str, str, str], Exception]

__all__ = [
    "TOO_MANY_DIGITS",
    "Checker",
    "clip",
    "described",
    "parse_json",
    "parse_json_lazy",
    "read_text",
    "shown_int",
    "syntax_error",
    "type_word",
    "unprintable",
]

# C0/C1 controls (a terminal acts on escape sequences instead of showing them) and lone
# surrogates (JSON "\\udc80" parses to one; no output stream can encode it).
_UNPRINTABLE = "[\x00-\x1f\x7f-\x9f\ud800-\udfff]"
# The same, but tab and newline are allowed (free text in a profile may be wrapped). Both are
# compiled on the first text that is not plain printable ASCII: most never need them, nor ``re``.
_UNPRINTABLE_TEXT = "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]"
_PATTERNS: Dict[str, Any] = {}

# Short texts read from documents (module parameters, CPU flags, device paths, names) are kept
# once and shared by every document read: a fleet's hosts repeat nearly all of them. A bounded
# table (hostile input cannot grow it past its size), of texts up to this length.
_shared_text = Shared(16384)
_SHARED_LENGTH = 64


def unprintable(text: str, *, whitespace: bool = False) -> Optional[str]:
    """Why ``text`` cannot be printed as itself, or ``None`` when it can.

    ``whitespace=True`` lets tab and newline through (free text); other controls never pass.

    Example:
        >>> unprintable("kvm"), unprintable("a\\x1b[2J"), unprintable("a\\tb", whitespace=True)
        (None, "contains the unprintable character '\\\\x1b' at offset 1", None)
    """
    if text.isascii() and text.isprintable():  # the usual case, answered without a pattern
        return None
    pattern = _UNPRINTABLE_TEXT if whitespace else _UNPRINTABLE
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        import re

        compiled = _PATTERNS[pattern] = re.compile(pattern)
    bad = compiled.search(text)
    if bad is None:
        return None
    return f"contains the unprintable character {ascii(bad.group())} at offset {bad.start()}"


def clip(text: str, limit: int = 60) -> str:
    """At most ``limit`` characters of ``text`` for a message (a value may be megabytes long).

    Example:
        >>> clip("x" * 100, 10)
        'xxxxxxx...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_int(value: int) -> str:
    """An integer for a message; one too long to print sensibly is given by its size.

    Example:
        >>> shown_int(12), shown_int(10 ** 5000)
        ('12', 'an integer of 16610 bits')
    """
    return str(value) if value.bit_length() <= 128 else f"an integer of {value.bit_length()} bits"


def type_word(item: Any) -> str:
    """The JSON word for a parsed value's type: ``null``, ``a boolean``, ``an integer``...

    Example:
        >>> type_word(None), type_word(True), type_word(3), type_word(1.5), type_word([]), type_word({})
        ('null', 'a boolean', 'an integer', 'a number with a fraction', 'an array', 'an object')
    """
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "a boolean"
    if isinstance(item, int):
        return "an integer"
    if isinstance(item, float):
        return "a number with a fraction"
    if isinstance(item, str):
        return "a string"
    if isinstance(item, (list, tuple)):
        return "an array"
    if isinstance(item, Mapping):
        return "an object"
    return type(item).__name__


def described(item: Any) -> str:
    """:func:`type_word`, with the value itself for a scalar (clipped, escaped).

    Example:
        >>> described(5), described("yes"), described([1])
        ('an integer (5)', "a string ('yes')", 'an array')
    """
    word = type_word(item)
    if isinstance(item, bool):
        return f"{word} ({'true' if item else 'false'})"
    if isinstance(item, int):
        return f"{word} ({clip(shown_int(item))})"
    if isinstance(item, (float, str)):
        return f"{word} ({clip(ascii(item))})"
    return word


# What a parse_json_lazy tree holds other values in: an object (tuple) or an array (list).
_CONTAINERS = frozenset({tuple, list})


class Checker:
    """Field checks for one document; every failure is the caller's exception, naming the field.

    Example:
        >>> check = Checker(lambda field, message, hint: ValueError(f"{field}: {message}"))
        >>> check.integer(7, "$.n", 0, 10)
        7
        >>> check.integer(True, "$.n", 0, 10)
        Traceback (most recent call last):
        ...
        ValueError: $.n: expected an integer, got a boolean (true)
    """

    def __init__(self, make_error: ErrorMaker) -> None:
        self._make = make_error

    def fail(self, field: str, message: str, hint: str = "") -> NoReturn:
        """Raise the caller's error for ``field``."""
        raise self._make(field, message, hint)

    def integer(self, item: Any, field: str, low: int, high: int) -> int:
        """An integer (never a boolean) within ``low..high``."""
        if isinstance(item, bool) or not isinstance(item, int):
            self.fail(field, f"expected an integer, got {described(item)}")
        if not low <= item <= high:
            self.fail(field, f"{shown_int(item)} is out of range ({low}..{high})")
        return int(item)

    def integer_or_null(self, item: Any, field: str, low: int, high: int) -> Optional[int]:
        """As :meth:`integer`, or ``None`` for null."""
        if item is None:
            return None
        if isinstance(item, bool) or not isinstance(item, int):
            self.fail(field, f"expected an integer or null, got {described(item)}")
        return self.integer(item, field, low, high)

    def text(self, item: Any, field: str, *, empty: bool = False, whitespace: bool = False) -> str:
        """A printable string (non-empty unless ``empty``; tab/newline only with ``whitespace``)."""
        if not isinstance(item, str):
            self.fail(field, f"expected a string, got {described(item)}")
        if not item.strip() and not empty:
            self.fail(field, "expected a non-empty string")
        why = unprintable(item, whitespace=whitespace)
        if why is not None:
            self.fail(field, why)
        # One object per short text read: a fleet's hosts repeat them.
        return _shared_text(item) if len(item) <= _SHARED_LENGTH else item

    def text_or_null(self, item: Any, field: str) -> Optional[str]:
        """As :meth:`text` (empty allowed), or ``None`` for null."""
        return None if item is None else self.text(item, field, empty=True)

    def boolean(self, item: Any, field: str) -> bool:
        """``true`` or ``false``."""
        if not isinstance(item, bool):
            self.fail(field, f"expected true or false, got {described(item)}")
        return item

    def boolean_or_null(self, item: Any, field: str) -> Optional[bool]:
        """``true``, ``false`` or ``None`` for null."""
        return None if item is None else self.boolean(item, field)

    def mapping(self, item: Any, field: str) -> Mapping[str, Any]:
        """An object whose keys are printable."""
        if not isinstance(item, Mapping):
            self.fail(field, f"expected an object, got {described(item)}")
        for key in item:
            why = unprintable(str(key))
            if why is not None:
                self.fail(field, f"a key {why}")
        return item

    def pairs(self, item: Any, field: str) -> Dict[str, Any]:
        """An object of a :func:`parse_json_lazy` tree as a dict (its values stay lazy): its
        keys printable, none twice."""
        if not isinstance(item, tuple):
            self.fail(field, f"expected an object, got {described(item)}")
        found = dict(item)
        if len(found) != len(item):
            seen: Dict[str, int] = {}
            for key, _ in item:
                if key in seen:
                    self.fail(field, f"key {clip(ascii(key))} appears twice in one object")
                seen[key] = 1
        if unprintable("".join(found)) is not None:  # one search for all the keys
            for key in found:
                why = unprintable(key)
                if why is not None:
                    self.fail(field, f"a key {why}")
        return found

    def plain(self, item: Any, field: str) -> Any:
        """A :func:`parse_json_lazy` subtree as :func:`parse_json` would have given it.

        Example:
            >>> check = Checker(lambda field, message, hint: ValueError(f"{field}: {message}"))
            >>> check.plain(parse_json_lazy('[{"a": {"b": [1]}}]', ValueError), "$")
            [{'a': {'b': [1]}}]
        """
        if isinstance(item, tuple):
            found = self.pairs(item, field)
            for key, value in found.items():
                if isinstance(value, (tuple, list)):
                    found[key] = self.plain(value, key_path(field, key))
            return found
        if isinstance(item, list):
            out: List[Any] = []
            for i, value in enumerate(item):
                if type(value) is tuple:  # the usual row: an object of scalars, converted in place
                    found = dict(value)
                    if (len(found) == len(value) and unprintable("".join(found)) is None
                            and _CONTAINERS.isdisjoint(map(type, found.values()))):  # fmt: skip
                        out.append(found)
                        continue
                out.append(self.plain(value, f"{field}[{i}]") if isinstance(value, (tuple, list)) else value)
            return out
        return item

    def array(self, item: Any, field: str) -> List[Any]:
        """An array."""
        if not isinstance(item, list):
            self.fail(field, f"expected an array, got {described(item)}")
        return item

    def keys(self, item: Mapping[str, Any], field: str, known: Sequence[str], required: Iterable[str] = ()) -> None:
        """Refuse a key not in ``known`` (suggesting the closest), and a missing required one."""
        for key in item:
            if key not in known:
                import difflib  # only on this error path

                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                self.fail(
                    key_path(field, str(key)),
                    "unknown key",
                    (f"did you mean '{close[0]}'? " if close else "") + "the keys are: " + ", ".join(known),
                )
        for key in required:
            if key not in item:
                self.fail(key_path(field, key), "missing")


def key_path(parent: str, key: str) -> str:
    """The JSON path of ``key`` under ``parent``: ``$.a`` or ``$["odd key"]``.

    An empty ``parent`` gives the key alone (the bare key names of a profile).

    Example:
        >>> key_path("$", "api_version"), key_path("$.host", "a b"), key_path("", "arch")
        ('$.api_version', '$.host["a b"]', 'arch')
    """
    import json

    plain = key.isascii() and key.replace("_", "a").isalnum() and not key[:1].isdigit()
    if not parent:  # a top-level key of a document whose keys are named bare (profiles)
        return key if plain else json.dumps(clip(key))
    if plain:
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(clip(key))}]"



def read_text(path: str, limit: int, make_error: FileErrorMaker, *, hint: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or the caller's error.

    A FIFO, a device or a directory is refused before it is opened (see
    :func:`kvmprobe._files.read_limited`), a larger file before it is read. ``hint`` goes with
    errors about the path; a file that is not UTF-8 is the file's fault and gets none.

    Example:
        >>> read_text("/nonexistent", 100, lambda m, p, h: ValueError(f"{p}: {m}"), hint="")
        Traceback (most recent call last):
        ...
        ValueError: /nonexistent: cannot open: ENOENT (No such file or directory)
    """
    try:
        data = read_limited(path, limit)
    except FileRefused as err:
        if err.errno == errno.EFBIG:
            size = f"{err.size} bytes" if err.size is not None else "more"
            raise make_error(f"{size} is too large (at most {limit} bytes)", path, hint) from None
        raise make_error(err.strerror or "not a regular file", path, hint) from None
    except OSError as err:
        raise make_error(f"cannot open: {describe_errno(err.errno or 0)}", path, hint) from err
    except ValueError as err:  # an embedded NUL, or a surrogate the file system encoding cannot carry
        raise make_error(f"cannot open: not a file name ({err})", ascii(path), hint) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise make_error(f"not UTF-8 text (bad byte at offset {err.start})", path, "") from None


class _Refused(ValueError):
    """A JSON document that parses in Python but is no standard, unambiguous JSON."""


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    document = dict(pairs)  # at C speed; a key given twice leaves fewer keys than pairs
    if len(document) != len(pairs):
        seen: Set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"key {clip(ascii(key))} appears twice in one object")
            seen.add(key)
    return document


def _no_constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is no JSON number")


def syntax_error(message: str, line: int, column: int) -> str:
    """A parser's complaint and where, worded alike for JSON and TOML: ``MESSAGE at line L, column C``.

    json ends some messages with "at" (``Unterminated string starting at``), which is not repeated.

    Example:
        >>> syntax_error("Unterminated string starting at", 1, 7)
        'Unterminated string starting at line 1, column 7'
    """
    text = message.strip()
    return f"{text[:-3] if text.endswith(' at') else text} at line {line}, column {column}"


#: What a number too long to convert is called, by every parser (Python's own words advise
#: sys.set_int_max_str_digits(), which means nothing to a user).
TOO_MANY_DIGITS = "a number has too many digits"


def parse_json(text: str, make_error: Callable[[str], Exception]) -> Any:
    """Parse ``text`` as strict JSON, or raise the caller's error with one clear reason.

    Refused besides syntax errors: a key twice in one object, ``NaN``/``Infinity``, nesting
    deeper than Python's recursion allows, and integers too long to convert.

    Example:
        >>> parse_json('{"a": 1}', ValueError)
        {'a': 1}
        >>> parse_json('{"a": 1, "a": 2}', ValueError)
        Traceback (most recent call last):
        ...
        ValueError: not valid JSON: key 'a' appears twice in one object
    """
    return _parse(text, make_error, _no_duplicates)


def parse_json_lazy(text: str, make_error: Callable[[str], Exception]) -> Any:
    """As :func:`parse_json`, but every object stays a tuple of ``(key, value)`` pairs.

    For a reader that uses a few parts of a large document (a fleet reads only a snapshot's
    CPU section): the parse builds no dictionaries, and :meth:`Checker.pairs` turns each object
    it reads into one, refusing a key twice there. Arrays are lists, so an empty object (``()``)
    and an empty array (``[]``) stay apart. Syntax, ``NaN`` and long numbers are refused as by
    :func:`parse_json`.

    Example:
        >>> parse_json_lazy('{"a": [1, {}], "b": {"c": null}}', ValueError)
        (('a', [1, ()]), ('b', (('c', None),)))
    """
    return _parse(text, make_error, tuple)


def _parse(text: str, make_error: Callable[[str], Exception], hook: Callable[[Any], Any]) -> Any:
    import json  # only where JSON is read: a command that writes none never loads it

    try:
        return json.loads(text, object_pairs_hook=hook, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        reason = syntax_error(err.msg, err.lineno, err.colno)
    except _Refused as err:
        reason = str(err)
    except RecursionError:  # json recurses once per nesting level
        reason = "nested too deeply"
    except ValueError:  # an integer of more digits than int() converts (sys.get_int_max_str_digits)
        reason = TOO_MANY_DIGITS
    raise make_error(f"not valid JSON: {reason}")
