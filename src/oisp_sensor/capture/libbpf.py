"""A small ctypes binding of the libbpf 1.x calls the sensor uses (Debian's libbpf1).

Only what the loader needs: open/load an object, find maps and programs, attach
tracepoints and uprobes, ring buffers, and raw map lookups/updates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

c_void_p = ctypes.c_void_p

# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_void_p, c_void_p, ctypes.c_size_t)
# int (*libbpf_print_fn_t)(enum libbpf_print_level level, const char *, va_list ap)
PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, c_void_p)


class UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ref_ctr_offset", ctypes.c_size_t),
        ("bpf_cookie", ctypes.c_uint64),
        ("retprobe", ctypes.c_bool),
        ("func_name", ctypes.c_char_p),
    ]


class LibbpfError(OSError):
    """A libbpf call failed; errno and the call are in the message."""


def _find_libbpf() -> str:
    for candidate in ("libbpf.so.1", ctypes.util.find_library("bpf")):
        if not candidate:
            continue
        try:
            ctypes.CDLL(candidate)
            return candidate
        except OSError:
            continue
    raise LibbpfError("libbpf.so.1 not found: install the libbpf1 package (apt-get install libbpf1)")


class Libbpf:
    """The loaded library with argument and return types declared."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(_find_libbpf(), use_errno=True)
        sigs: dict[str, tuple[object, list[object]]] = {
            "bpf_object__open": (c_void_p, [ctypes.c_char_p]),
            "bpf_object__load": (ctypes.c_int, [c_void_p]),
            "bpf_object__close": (None, [c_void_p]),
            "bpf_object__find_map_by_name": (c_void_p, [c_void_p, ctypes.c_char_p]),
            "bpf_object__find_program_by_name": (c_void_p, [c_void_p, ctypes.c_char_p]),
            "bpf_map__fd": (ctypes.c_int, [c_void_p]),
            "bpf_map__set_max_entries": (ctypes.c_int, [c_void_p, ctypes.c_uint32]),
            "bpf_program__attach": (c_void_p, [c_void_p]),
            "bpf_program__attach_uprobe_opts": (
                c_void_p,
                [c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(UprobeOpts)],
            ),
            "bpf_link__destroy": (ctypes.c_int, [c_void_p]),
            "libbpf_get_error": (ctypes.c_long, [c_void_p]),
            "libbpf_num_possible_cpus": (ctypes.c_int, []),
            "libbpf_set_print": (c_void_p, [PRINT_FN]),
            "ring_buffer__new": (c_void_p, [ctypes.c_int, SAMPLE_FN, c_void_p, c_void_p]),
            "ring_buffer__poll": (ctypes.c_int, [c_void_p, ctypes.c_int]),
            "ring_buffer__consume": (ctypes.c_int, [c_void_p]),
            "ring_buffer__free": (None, [c_void_p]),
            "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p]),
            "bpf_map_update_elem": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p, ctypes.c_uint64]),
            "bpf_map_lookup_and_delete_elem": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p]),
        }
        for name, (restype, argtypes) in sigs.items():
            fn = getattr(self.lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        # Keep a reference: libbpf calls it for every log line.
        self._printer: Callable[..., int] | None = None

    def silence(self) -> None:
        """Drop libbpf's own log lines (we report failures ourselves, in one line)."""

        @PRINT_FN
        def _quiet(level: int, fmt: bytes, args: int) -> int:
            return 0

        self._printer = _quiet
        self.lib.libbpf_set_print(_quiet)

    @staticmethod
    def errno_error(what: str, err: int | None = None) -> LibbpfError:
        code = abs(err) if err else ctypes.get_errno()
        return LibbpfError(code, f"{what}: {os.strerror(code) if code else 'failed'}")

    def ptr_or_raise(self, ptr: int | None, what: str) -> int:
        """libbpf 1.x returns NULL and sets errno on failure."""
        if not ptr:
            raise self.errno_error(what)
        return ptr
