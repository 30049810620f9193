"""The hand-written checks that replaced standard-library tools on the command paths (issue #19).

``re``, ``textwrap`` and ``statistics`` each cost milliseconds to import, so the commands that
need nothing else of them check a release, a version, a number or a name by hand. Each check
here is compared, on generated input, with the tool it replaced: the expression or function
the code used before, written out in the test.
"""

from __future__ import annotations

import re
import statistics
import textwrap
from typing import List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmprobe import _validate
from kvmprobe._cli._cpu import wrap_words
from kvmprobe._guest_report import _is_utc_time
from kvmprobe._release import parse_release
from kvmprobe._vmm_versions import _numbers
from kvmprobe.caps import parse_number
from kvmprobe.guest import _median

# Characters that make the edge cases: digits of two scripts, the separators, controls.
_CHARS = st.sampled_from(list("0123456789.-xX aAfFgZT:_\t\n\x1b\x7f\x85\ud800٣²") + ["\u00a0"])
_TEXT = st.text(_CHARS, max_size=24)
_TIMES = st.builds(
    lambda *parts: "{}-{}-{}T{}:{}:{}Z".format(*parts),
    *(st.text(st.sampled_from("0123456789٣"), min_size=size, max_size=size) for size in (4, 2, 2, 2, 2, 2)),
)


def _release_before(release: str, exact: bool) -> Optional[Tuple[int, int]]:
    match = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})(?![0-9])", re.ASCII).match(release.strip())
    if match is None or (exact and match.end() != len(release.strip())):
        return None
    return int(match.group(1)), int(match.group(2))


@settings(max_examples=150)
@given(_TEXT | st.from_regex(r"[0-9]{1,11}\.[0-9]{1,11}[-.a-z0-9]{0,6}", fullmatch=True), st.booleans())
def test_parse_release_is_the_expression_it_replaced(text: str, exact: bool) -> None:
    assert parse_release(text, exact=exact) == _release_before(text, exact)


@settings(max_examples=150)
@given(_TEXT | st.from_regex(r"[0-9]{1,10}(\.[0-9]{0,10}){0,7}", fullmatch=True))
def test_version_numbers_are_the_expression_they_replaced(text: str) -> None:
    assert _numbers(text) == (re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,5}").fullmatch(text) is not None)


def _number_before(text: str) -> Optional[int]:
    text = text.strip()
    if re.compile(r"[0-9]{1,10}|0[xX][0-9a-fA-F]{1,8}", re.ASCII).fullmatch(text) is None:
        return None
    number = int(text, 0) if text[:2].lower() == "0x" else int(text, 10)
    return number if number <= 2**31 - 1 else None


@settings(max_examples=150)
@given(_TEXT | st.from_regex(r"\s?(0[xX])?[0-9a-fA-F]{0,11}\s?", fullmatch=True))
def test_capability_numbers_are_the_expression_they_replaced(text: str) -> None:
    assert parse_number(text) == _number_before(text)


@settings(max_examples=150)
@given(st.text(max_size=12) | _TEXT, st.booleans())
def test_unprintable_is_the_expression_it_replaced(text: str, whitespace: bool) -> None:
    pattern = "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]" if whitespace else "[\x00-\x1f\x7f-\x9f\ud800-\udfff]"
    bad = re.compile(pattern).search(text)
    expected = None if bad is None else f"contains the unprintable character {ascii(bad.group())} at offset {bad.start()}"
    assert _validate.unprintable(text, whitespace=whitespace) == expected


@given(st.text(st.sampled_from("aZ_09-. é"), max_size=6))
def test_plain_keys_are_the_expression_they_replaced(key: str) -> None:
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) is not None
    assert (_validate.key_path("$", key) == f"$.{key}") == plain


@settings(max_examples=100)
@given(_TIMES | _TEXT)
def test_run_times_are_the_expression_they_replaced(text: str) -> None:
    assert _is_utc_time(text) == (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").fullmatch(text) is not None)


@settings(max_examples=100)
@given(st.lists(st.text(st.sampled_from("abcdefgh_0123456789 \t-"), max_size=14), max_size=30), st.integers(1, 40))
def test_feature_lines_are_textwraps(words: List[str], width: int) -> None:
    assert wrap_words(words, width) == textwrap.wrap(" ".join(words), width=width, break_on_hyphens=False)


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=25))
def test_the_exit_cost_median_is_statistics_median(times: List[int]) -> None:
    assert _median(times) == statistics.median(times)
