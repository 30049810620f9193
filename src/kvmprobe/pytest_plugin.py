"""kvmprobe's pytest plugin: test KVM code on machines without KVM, and skip what needs it.

Loaded through the ``pytest11`` entry point wherever kvmprobe is installed, so it imports
nothing of kvmprobe until a test asks (pytest loads it in every run). It only wraps
:mod:`kvmprobe.testing` and the public API. It gives:

* the ``fake_kvm`` fixture: call it (``fake_kvm("linux-3.10", IMMEDIATE_EXIT=1)``) or
  parametrize it indirectly (``@pytest.mark.parametrize("fake_kvm", ["linux-5.4"],
  indirect=True)``), and every ``kvmprobe.has()``, ``value()`` and ``probe()`` in the test,
  in any thread, sees that host: a preset name, a snapshot file, a dict of capability
  values, or a :class:`~kvmprobe.ProbeResult`, plus capability overrides. Restored after
  the test.
* the ``kvm`` marker and the ``real_kvm`` fixture: a test marked ``@pytest.mark.kvm`` (or
  asking for ``real_kvm``) is skipped, with the reason and the fix, where no usable KVM
  device exists (``$KVMPROBE_DEVICE`` or ``/dev/kvm``: absent, permission denied, not a KVM
  device). The device is checked once per session, by opening it and asking its API
  version. Set ``KVMPROBE_REQUIRE_KVM=1`` (e.g. on CI runners that must have KVM) to fail
  those tests instead of skipping them.

Example:
    A downstream test module (no import of kvmprobe.testing needed)::

        import kvmprobe, pytest

        def test_refuses_old_kernels(fake_kvm):
            fake_kvm("linux-3.10")
            assert not kvmprobe.has("IMMEDIATE_EXIT")

        @pytest.mark.kvm
        def test_on_real_kvm(real_kvm):
            assert real_kvm.api_version == 12
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator, List, Optional

import pytest

if TYPE_CHECKING:
    from .probing import ProbeResult
    from ._cpu_record import CpuRecord
    from .testing import HostSpec, Values

__all__ = ["FakeKvm", "fake_kvm", "kvm_unavailable_reason", "real_kvm"]

_MARKER = "kvm: needs a usable KVM device (/dev/kvm or $KVMPROBE_DEVICE); skipped with the reason where there is none"
_REASON_KEY = pytest.StashKey[Optional[str]]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``kvm`` marker, unless the project's own configuration already does."""
    names = [line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")]
    if "kvm" not in names:
        config.addinivalue_line("markers", _MARKER)


def kvm_unavailable_reason(path: Optional[str] = None) -> Optional[str]:
    """Why the KVM device cannot be used here (one line with the fix), or ``None`` when it can.

    The device (``path``, else ``$KVMPROBE_DEVICE``, else ``/dev/kvm``) is opened and asked
    ``KVM_GET_API_VERSION``, then closed; fakes installed by ``fake_kvm`` do not count.

    Example:
        >>> print(kvm_unavailable_reason("/nonexistent/kvm"))  # doctest: +ELLIPSIS
        no usable KVM device: /nonexistent/kvm does not exist (hint: ...)
    """
    from .device import KvmDevice
    from .errors import KvmUnavailable

    try:
        with KvmDevice.open(path):  # closed on leaving the block
            return None
    except KvmUnavailable as err:
        return f"no usable KVM device: {err}"


def _session_reason(config: pytest.Config) -> Optional[str]:
    if _REASON_KEY not in config.stash:
        config.stash[_REASON_KEY] = kvm_unavailable_reason()
    return config.stash[_REASON_KEY]


def _required() -> bool:
    return os.environ.get("KVMPROBE_REQUIRE_KVM", "") not in ("", "0")


def _skip_without_kvm(config: pytest.Config) -> None:
    reason = _session_reason(config)
    if reason is None:
        return
    if _required():
        pytest.fail(f"{reason} (KVMPROBE_REQUIRE_KVM is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _needs_kvm(item: pytest.Item) -> bool:
    return item.get_closest_marker("kvm") is not None or "real_kvm" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Mark the tests that need KVM (marker ``kvm`` or fixture ``real_kvm``) skipped, with the reason.

    A skip mark (rather than a skip raised later) makes pytest report each test's own location.
    The device is opened only when such a test was collected.
    """
    needing = [item for item in items if _needs_kvm(item)]
    if not needing or _required():
        return
    reason = _session_reason(config)
    if reason is not None:
        for item in needing:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """With ``KVMPROBE_REQUIRE_KVM`` set, fail a test that needs KVM where there is none."""
    if _needs_kvm(item):
        _skip_without_kvm(item.config)


class FakeKvm:
    """What the ``fake_kvm`` fixture gives a test: call it to make kvmprobe see a host.

    Each call installs a host for the rest of the test (a later call wins) and returns it as
    a :class:`~kvmprobe.ProbeResult`; the arguments are those of
    :func:`kvmprobe.testing.fake_kvm`. ``host`` is the host installed last, or ``None``.

    Example:
        >>> import kvmprobe
        >>> fake = FakeKvm()
        >>> fake("linux-4.14", NR_VCPUS=64).value("NR_VCPUS"), kvmprobe.value("NR_VCPUS")
        (64, 64)
        >>> fake.close(); fake.host is None
        True
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._hosts: List[ProbeResult] = []

    def __call__(
        self, host: HostSpec = None, overrides: Optional[Values] = None, /, *, cpu: Optional[CpuRecord] = None, **caps: int
    ) -> ProbeResult:
        from .testing import fake_kvm as _fake_kvm

        result = self._stack.enter_context(_fake_kvm(host, overrides, cpu=cpu, **caps))
        self._hosts.append(result)
        return result

    @property
    def host(self) -> Optional[ProbeResult]:
        """The host installed last (``None`` before the first call)."""
        return self._hosts[-1] if self._hosts else None

    def close(self) -> None:
        """Remove every host this object installed (the fixture does this after the test)."""
        self._stack.close()
        self._hosts.clear()


@pytest.fixture
def fake_kvm(request: pytest.FixtureRequest) -> Iterator[FakeKvm]:
    """Make every kvmprobe call in the test see a chosen host; restored after the test.

    Call it with a preset name (``kvmprobe.preset_names()``), a snapshot file, a dict of
    capability values or a ``ProbeResult``, plus overrides (``fake_kvm("linux-5.4",
    IMMEDIATE_EXIT=0)``). With indirect parametrization the parameter is installed before
    the test starts (a tuple is spread into the call: ``("linux-5.4", {"IMMEDIATE_EXIT": 0})``).

    Example:
        >>> def test_old_kernel(fake_kvm):  # doctest: +SKIP
        ...     fake_kvm("linux-3.10")
        ...     assert not kvmprobe.has("IMMEDIATE_EXIT")
    """
    fake = FakeKvm()
    try:
        param = getattr(request, "param", None)
        if isinstance(param, tuple):
            fake(*param)
        elif param is not None:
            fake(param)
        yield fake
    finally:
        fake.close()


@pytest.fixture
def real_kvm(request: pytest.FixtureRequest) -> ProbeResult:
    """The real host's KVM, probed afresh; the test is skipped (with why) where there is none.

    Raises (as a test failure):
        a fake host is installed too: the two do not mix in one test.

    Example:
        >>> def test_api(real_kvm):  # doctest: +SKIP
        ...     assert real_kvm.api_version == 12
    """
    from .probing import probe

    _skip_without_kvm(request.config)
    result = probe(refresh=True)
    if result.source != "live":
        pytest.fail(f"real_kvm got the fake host {result.source!r}: do not use it together with fake_kvm", pytrace=False)
    return result
