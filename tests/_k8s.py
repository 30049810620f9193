"""The Kubernetes label rules, written out here so that tests do not check kvmprobe.export with itself.

Restated from k8s.io/apimachinery/pkg/util/validation (``IsQualifiedName``, ``IsValidLabelValue``,
``IsDNS1123Subdomain``).
"""

from __future__ import annotations

import re

K8S_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
K8S_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
K8S_SUBDOMAIN = re.compile(rf"{K8S_DNS_LABEL}(\.{K8S_DNS_LABEL})*")


def k8s_key_ok(key: str) -> bool:
    """A label key: an optional DNS-subdomain prefix (at most 253) and ``/``, then a name (1-63)."""
    parts = key.split("/")
    if len(parts) > 2:
        return False
    if len(parts) == 2:
        prefix, name = parts
        if not (1 <= len(prefix) <= 253 and K8S_SUBDOMAIN.fullmatch(prefix)):
            return False
    else:
        name = parts[0]
    return 1 <= len(name) <= 63 and K8S_NAME.fullmatch(name) is not None


def k8s_value_ok(value: str) -> bool:
    """A label value: empty, or at most 63 name characters, alphanumeric at both ends."""
    return value == "" or (len(value) <= 63 and K8S_NAME.fullmatch(value) is not None)
