"""Types of the compiled cffi module ``kvmprobe._kvmbatch`` (src/_kvmprobe_cffi/build_batch.py)."""

from typing import Any

class Lib:
    """The C functions; pointers are cffi cdata objects."""

    def kvmbatch_version(self) -> Any: ...
    def kvmbatch_ioctl(self, fd: int, request: int, arg: int, /) -> int: ...
    def kvmbatch_check_many(
        self, fd: int, request: int, numbers: Any, values: Any, errnos: Any, count: int, /
    ) -> int: ...

ffi: Any
lib: Lib
