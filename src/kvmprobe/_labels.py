"""Kubernetes label names and values: the rules they follow, and any text made into one.

Imports nothing from the package. The rules are Kubernetes' own (k8s.io/apimachinery
``IsQualifiedName``, ``IsValidLabelValue``, DNS-1123 subdomains) and nfd-master's (the
``kubernetes.io`` namespaces it drops); ``export`` builds its labels with them and is where
users import them.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["DEFAULT_PREFIX", "NAME_MAX", "check_prefix", "is_label_value", "is_qualified_name", "label_name"]

#: The label namespace kvmprobe writes under unless told otherwise (``--prefix``). A fleet
#: that owns a domain should use its own (``kvm.example.com``), as Kubernetes recommends.
DEFAULT_PREFIX = "kvmprobe.io"

# k8s.io/apimachinery/pkg/util/validation: qualifiedNameFmt / labelValueFmt and
# dns1123SubdomainFmt, with their limits (63 for a name or value, 253 for a prefix).
#: The longest label name (or value) Kubernetes takes.
NAME_MAX = 63
_PREFIX_MAX = 253
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_NOT_NAME_CHAR = re.compile(r"[^-A-Za-z0-9_.]")
_UNTRIMMED = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")

# nfd-master drops labels in kubernetes.io namespaces except these (pkg/apis/nfd/validate).
_NFD_ALLOWED_K8S = ("feature.node.kubernetes.io", "profile.node.kubernetes.io")

# Digits of the hash a shortened or repaired name ends with (8 hex: 32 bits, plenty for names).
_HASH_DIGITS = 8


def is_qualified_name(key: str) -> bool:
    """Whether ``key`` is a valid Kubernetes label key (``IsQualifiedName``).

    That is an optional prefix (a lowercase DNS subdomain of at most 253 characters) and
    ``/``, then a name of at most 63 characters from ``[A-Za-z0-9._-]`` that begins and
    ends with a letter or digit.

    Example:
        >>> is_qualified_name("kvmprobe.io/kvm.cap.immediate_exit"), is_qualified_name("kvm.usable")
        (True, True)
        >>> is_qualified_name("kvmprobe.io/_hidden"), is_qualified_name("Kvmprobe.io/x"), is_qualified_name("a/b/c")
        (False, False, False)
    """
    prefix, slash, name = key.rpartition("/")
    if slash and not _is_subdomain(prefix):
        return False
    return len(name) <= NAME_MAX and _NAME.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (``IsValidLabelValue``): empty, or
    at most 63 characters from ``[A-Za-z0-9._-]`` beginning and ending alphanumeric.

    Example:
        >>> is_label_value("32764"), is_label_value(""), is_label_value("-1"), is_label_value("a" * 64)
        (True, True, False, False)
    """
    return value == "" or (len(value) <= NAME_MAX and _NAME.fullmatch(value) is not None)


def _is_subdomain(text: str) -> bool:
    return 0 < len(text) <= _PREFIX_MAX and _SUBDOMAIN.fullmatch(text) is not None


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if labels under it are valid and nfd-master keeps them, else raise.

    A prefix is a lowercase DNS subdomain of at most 253 characters. nfd-master drops
    labels in ``kubernetes.io`` and ``*.kubernetes.io`` except under
    ``feature.node.kubernetes.io`` and ``profile.node.kubernetes.io`` (and their
    subdomains), so those others are refused here rather than silently lost there.

    Raises:
        ValueError: the prefix is not usable; the message says why and what would be.

    Example:
        >>> check_prefix("kvm.example.com"), check_prefix("feature.node.kubernetes.io")
        ('kvm.example.com', 'feature.node.kubernetes.io')
        >>> check_prefix("node.kubernetes.io")
        Traceback (most recent call last):
        ...
        ValueError: label prefix 'node.kubernetes.io' is a kubernetes.io namespace, whose labels nfd-master drops; use a domain of your own or feature.node.kubernetes.io
    """
    if not _is_subdomain(prefix):
        raise ValueError(
            f"label prefix {prefix!r} is not a lowercase DNS subdomain of at most {_PREFIX_MAX} characters "
            "(letters, digits, '-' and '.', each part starting and ending with a letter or digit), "
            f"e.g. {DEFAULT_PREFIX} or kvm.example.com"
        )
    if prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io"):
        if not any(prefix == ns or prefix.endswith("." + ns) for ns in _NFD_ALLOWED_K8S):
            raise ValueError(
                f"label prefix {prefix!r} is a kubernetes.io namespace, whose labels nfd-master drops; "
                "use a domain of your own or feature.node.kubernetes.io"
            )
    return prefix


def label_name(text: str, *, max_length: int = NAME_MAX) -> str:
    """Turn any text into a valid label name (or value) of at most ``max_length`` characters.

    A valid name comes back unchanged. Otherwise each character outside ``[A-Za-z0-9._-]``
    becomes ``-``, the ends are trimmed to a letter or digit, and ``-`` plus 8 hex digits of
    the SHA-256 of the original text is appended (cutting the name to make room), so two
    different inputs keep different names and the same input always gets the same one.

    Raises:
        ValueError: ``max_length`` leaves no room for the hash (it must be at least 9).

    Example:
        >>> label_name("cloud-hypervisor")
        'cloud-hypervisor'
        >>> label_name("_my vmm_")
        'my-vmm-c8b5cf49'
        >>> len(label_name("x" * 100)), label_name("x" * 100)[-9:]
        (63, '-09ecb6eb')
    """
    if max_length < _HASH_DIGITS + 1:
        raise ValueError(f"max_length {max_length} leaves no room for the {_HASH_DIGITS}-digit hash")
    if len(text) <= max_length and _NAME.fullmatch(text) is not None:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_DIGITS]
    cleaned = _NOT_NAME_CHAR.sub("-", text)
    room = max_length - _HASH_DIGITS - 1
    stem = _trim(_trim(cleaned)[:room])
    return f"{stem}-{digest}" if stem else digest


def _trim(text: str) -> str:
    """Strip the characters that may not begin or end a name."""
    return _UNTRIMMED.sub("", text)
