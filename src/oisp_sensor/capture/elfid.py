"""The identity of an ELF file's content: its GNU build id, read without an ELF library.

Two copies of one build (the system libssl and a container's or a venv's copy) have the
same functions at the same offsets: what was learned of one holds for the other.
"""

from __future__ import annotations

import struct


def build_id(path: str) -> bytes | None:
    """The GNU build id of a 64-bit little-endian ELF file, read from its PT_NOTE segments
    (a few small reads: this runs while a process that just opened the file may be about
    to call it). None without one or when unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            (phoff,) = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
                    "<IIQQQQ", table, i * phentsize
                )
                if p_type != 4 or p_filesz > 65536:  # PT_NOTE
                    continue
                f.seek(p_offset)
                notes = f.read(p_filesz)
                at = 0
                while at + 12 <= len(notes):
                    namesz, descsz, n_type = struct.unpack_from("<III", notes, at)
                    name_at = at + 12
                    desc_at = name_at + ((namesz + 3) & ~3)
                    if n_type == 3 and notes[name_at : name_at + namesz] == b"GNU\0":  # NT_GNU_BUILD_ID
                        return notes[desc_at : desc_at + descsz]
                    at = desc_at + ((descsz + 3) & ~3)
    except (OSError, struct.error):
        return None
    return None
