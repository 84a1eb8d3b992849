"""ctypes mirror of bpf/oisp_records.h: the kernel/user record layout.

tests/unit/test_layout.py compiles the header with the C compiler and checks every
size and offset here against it, so a change on one side fails the tests.
"""

from __future__ import annotations

import ctypes
import enum

CHUNK_MAX = 16384
MAX_CHUNKS = 64
COMM_LEN = 16
FLAG_TRUNCATED = 0x1
ARGS_MAX = 4096
FILENAME_MAX = 256
DNS_NAME_MAX = 128
DNS_ADDRS_MAX = 8
PATH_MAX = 512
ENV_MAX = 4096
FIRST_SEND_MAX = 1024
FLAG_DUP = 0x8
FLAG_PATH_RESOLVED = 0x10
FLAG_INHERITED = 0x20
FLAG_FD_REUSED = 0x2
WATCH_FILES = 0x1
WATCH_SOCKETS = 0x2


class RecordKind(enum.IntEnum):
    DATA = 1
    CONN_CLOSE = 2
    PROC_EXIT = 3
    PROC_EXEC = 4
    PROC_FORK = 5
    NET_CONNECT = 6
    DNS = 7
    FILE_OPEN = 8
    FILE_CLOSE = 9
    LIB_OPEN = 10
    NET_FIRST_SEND = 11


class Counter(enum.IntEnum):
    """Slots of the kernel's per-CPU `oisp_counters` array (enum oisp_counter)."""

    DATA_RECORDS = 0
    DATA_BYTES = 1
    LOST_RECORDS = 2
    LOST_BYTES = 3
    TRUNC_BYTES = 4
    READ_ERRORS = 5
    CTL_LOST = 6
    STASH_MISSES = 7
    SELF_SKIPPED = 8
    EVENTS_LOST = 9
    FILES_LOST = 10
    SOCKETS_FULL = 11


COUNTER_SLOTS = 12


class FileMode(enum.IntEnum):
    """enum oisp_file_mode: which processes' files are recorded."""

    OFF = 0
    WATCHED = 1
    ALL = 2


class DataHdr(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("ts_ns", ctypes.c_uint64),
        ("conn_id", ctypes.c_uint64),
        ("stream_offset", ctypes.c_uint64),
        ("call_len", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
        ("direction", ctypes.c_uint8),
        ("source", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 6),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class CtlEvent(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("ppid", ctypes.c_uint32),
        ("ts_ns", ctypes.c_uint64),
        ("conn_id", ctypes.c_uint64),
        ("exit_code", ctypes.c_int32),
        ("pad", ctypes.c_uint32),
        ("start_ns", ctypes.c_uint64),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class ExecHdr(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("ppid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("ts_ns", ctypes.c_uint64),
        ("args_len", ctypes.c_uint32),
        ("filename_len", ctypes.c_uint32),
        ("cwd_len", ctypes.c_uint32),
        ("env_len", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class NetEvent(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("ts_ns", ctypes.c_uint64),
        ("done_ns", ctypes.c_uint64),
        ("family", ctypes.c_uint16),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("success", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
        ("saddr", ctypes.c_uint8 * 16),
        ("daddr", ctypes.c_uint8 * 16),
        ("comm", ctypes.c_char * COMM_LEN),
        ("sock", ctypes.c_uint64),
    ]


class DnsEvent(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("ret", ctypes.c_int32),
        ("ts_ns", ctypes.c_uint64),
        ("done_ns", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("families", ctypes.c_uint16 * DNS_ADDRS_MAX),
        ("addrs", (ctypes.c_uint8 * 16) * DNS_ADDRS_MAX),
        ("name", ctypes.c_char * DNS_NAME_MAX),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class FileOpenEvent(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("ts_ns", ctypes.c_uint64),
        ("fd", ctypes.c_int32),
        ("dirfd", ctypes.c_int32),
        ("open_flags", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("path_len", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
        ("path", ctypes.c_char * PATH_MAX),
    ]


class FileCloseEvent(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("ts_ns", ctypes.c_uint64),
        ("open_ts_ns", ctypes.c_uint64),
        ("bytes_read", ctypes.c_uint64),
        ("bytes_written", ctypes.c_uint64),
        ("reads", ctypes.c_uint32),
        ("writes", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class Config(ctypes.Structure):
    _fields_ = [
        ("self_pid", ctypes.c_uint32),
        ("wakeup_bytes", ctypes.c_uint32),
        ("process_events", ctypes.c_uint32),
        ("network_events", ctypes.c_uint32),
        ("file_mode", ctypes.c_uint32),
        ("socket_capture", ctypes.c_uint32),
        ("exec_env", ctypes.c_uint32),
        ("lib_hints", ctypes.c_uint32),
        ("stdio_capture", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


class FirstSendEvent(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint16),
        ("len", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("ts_ns", ctypes.c_uint64),
        ("sock", ctypes.c_uint64),
        ("data", ctypes.c_uint8 * FIRST_SEND_MAX),
    ]


DATA_HDR_SIZE = ctypes.sizeof(DataHdr)
CTL_EVENT_SIZE = ctypes.sizeof(CtlEvent)
EXEC_HDR_SIZE = ctypes.sizeof(ExecHdr)
NET_EVENT_SIZE = ctypes.sizeof(NetEvent)
DNS_EVENT_SIZE = ctypes.sizeof(DnsEvent)
FILE_OPEN_SIZE = ctypes.sizeof(FileOpenEvent)
FILE_CLOSE_SIZE = ctypes.sizeof(FileCloseEvent)
FIRST_SEND_HDR_SIZE = FirstSendEvent.data.offset

# Structs checked against the C header by the layout test: (C name, ctypes class).
MIRRORED = [
    ("oisp_data_hdr", DataHdr),
    ("oisp_ctl_event", CtlEvent),
    ("oisp_exec_hdr", ExecHdr),
    ("oisp_net_event", NetEvent),
    ("oisp_dns_event", DnsEvent),
    ("oisp_file_open_event", FileOpenEvent),
    ("oisp_file_close_event", FileCloseEvent),
    ("oisp_first_send_event", FirstSendEvent),
    ("oisp_config", Config),
]
