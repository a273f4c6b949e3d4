"""A small, careful ELF reader for ``edgert inspect`` and ``edgert manifest
check``: machine, soname, ``DT_NEEDED``, run paths and exported functions of
a shared object, read from its dynamic segment exactly as the dynamic linker
sees it (section headers are not used, so a stripped file reads the same).

Invariants: the file is only read, never mapped executable or loaded; every
offset, size and count taken from the file is checked against the file's
size before it is used, so a truncated or hostile file raises
:class:`ElfError` naming what is wrong, never IndexError or struct.error, and
never reads more than the file holds. ELF32 and ELF64, either byte order, so
a library built for a device can be inspected on a workstation.
"""
from __future__ import annotations

import dataclasses
import os
import stat
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["ElfError", "ElfInfo", "read_elf", "resolve_needed", "MACHINES"]

# e_machine -> name (the ones edge boards and workstations run).
MACHINES: Dict[int, str] = {
    3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390", 40: "ARM",
    43: "SPARC V9", 50: "IA-64", 62: "x86-64", 183: "AArch64", 243: "RISC-V",
    258: "LoongArch",
}
_ET = {0: "none", 1: "relocatable", 2: "executable", 3: "shared object", 4: "core"}

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_NEEDED, _DT_HASH, _DT_STRTAB, _DT_SYMTAB = 0, 1, 4, 5, 6
_DT_STRSZ, _DT_SYMENT, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 10, 11, 14, 15, 29
_DT_FLAGS_1, _DT_GNU_HASH = 0x6FFFFFFB, 0x6FFFFEF5
_DF_1_NODEFLIB = 0x800
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
_STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE = 1, 2, 10
_MAX_SYMBOLS = 1 << 22  # more than any real library exports; bounds the walk


class ElfError(ValueError):
    """The file is not an ELF object, or not one this reader can make sense of."""


@dataclasses.dataclass
class ElfInfo:
    path: str
    elf_class: int            # 32 or 64
    byte_order: str           # "little" or "big"
    machine: int              # e_machine
    machine_name: str
    type: str                 # "shared object", "executable", ...
    soname: Optional[str]
    needed: List[str]
    rpath: List[str]
    runpath: List[str]
    nodeflib: bool
    functions: List[str]      # exported (defined, global/weak, default/protected) functions, sorted


class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        if len(data) < 16 or data[:4] != b"\x7fELF":
            raise ElfError(f"{path}: not an ELF file (no \\x7fELF magic at its start)")
        cls, enc = data[4], data[5]
        if cls not in (1, 2):
            raise ElfError(f"{path}: unknown ELF class {cls} (expected 1 or 2)")
        if enc not in (1, 2):
            raise ElfError(f"{path}: unknown ELF data encoding {enc} (expected 1 or 2)")
        self.is64 = cls == 2
        self.end = "<" if enc == 1 else ">"

    def unpack(self, fmt: str, off: int, what: str) -> Tuple[int, ...]:
        size = struct.calcsize(self.end + fmt)
        if off < 0 or off + size > len(self.data):
            raise ElfError(f"{self.path}: {what} at offset {off} is outside the file "
                           f"({len(self.data)} bytes): truncated or malformed")
        return struct.unpack_from(self.end + fmt, self.data, off)

    def cstring(self, off: int, limit: int, what: str) -> str:
        if off < 0 or off >= limit:
            raise ElfError(f"{self.path}: {what} points outside the string table")
        nul = self.data.find(b"\0", off, limit)
        if nul < 0:
            raise ElfError(f"{self.path}: {what} is not NUL-terminated inside the string table")
        return self.data[off:nul].decode("utf-8", "surrogateescape")


def read_elf(path: str, max_size: int = 1 << 30) -> ElfInfo:
    """Reads the ELF object at `path`. OSError if it cannot be read,
    ElfError if it is not an ELF object or is malformed."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ElfError(f"{path}: not a regular file")
        if st.st_size > max_size:
            raise ElfError(f"{path}: {st.st_size} bytes is more than the limit of {max_size}")
        data = f.read()
    return parse_elf(data, path)


def parse_elf(data: bytes, path: str = "<bytes>") -> ElfInfo:
    r = _Reader(data, path)
    if r.is64:
        e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum = r.unpack(
            "HHIQQQIHHH", 16, "ELF header")
        ph_fmt, ph_min = "IIQQQQQQ", 56
    else:
        e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum = r.unpack(
            "HHIIIIIHHH", 16, "ELF header")
        ph_fmt, ph_min = "IIIIIIII", 32
    if e_phnum and e_phentsize < ph_min:
        raise ElfError(f"{path}: program header entry size {e_phentsize} is smaller than {ph_min}")
    loads: List[Tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dyn: Optional[Tuple[int, int]] = None
    for i in range(e_phnum):
        v = r.unpack(ph_fmt, e_phoff + i * e_phentsize, f"program header {i}")
        if r.is64:
            p_type, _, p_offset, p_vaddr, _, p_filesz = v[0], v[1], v[2], v[3], v[4], v[5]
        else:
            p_type, p_offset, p_vaddr, _, p_filesz = v[0], v[1], v[2], v[3], v[4]
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dyn = (p_offset, p_filesz)

    def file_offset(vaddr: int, what: str) -> int:
        for va, off, sz in loads:
            if va <= vaddr < va + sz:
                return off + (vaddr - va)
        raise ElfError(f"{path}: {what} (address {vaddr:#x}) is in no loaded segment")

    info = ElfInfo(path, 64 if r.is64 else 32, "little" if r.end == "<" else "big", e_machine,
                   MACHINES.get(e_machine, f"machine {e_machine}"), _ET.get(e_type, f"type {e_type}"),
                   None, [], [], [], False, [])
    if dyn is None:
        return info  # a static executable or an object with nothing to link
    d_fmt, d_size = ("qQ", 16) if r.is64 else ("iI", 8)
    entries: List[Tuple[int, int]] = []
    off, end = dyn
    if end > len(data) - off:
        raise ElfError(f"{path}: the dynamic segment runs past the end of the file")
    for pos in range(off, off + end - d_size + 1, d_size):
        tag, val = r.unpack(d_fmt, pos, "dynamic entry")
        if tag == _DT_NULL:
            break
        entries.append((tag & 0xFFFFFFFFFFFFFFFF, val))
    first: Dict[int, int] = {}
    for tag, val in entries:
        first.setdefault(tag, val)
    if _DT_STRTAB not in first:
        if any(t in (_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH) for t, _ in entries):
            raise ElfError(f"{path}: dynamic section names strings but has no DT_STRTAB")
        return info
    str_off = file_offset(first[_DT_STRTAB], "DT_STRTAB")
    str_end = str_off + first.get(_DT_STRSZ, len(data) - str_off)
    if str_end > len(data):
        raise ElfError(f"{path}: the string table (DT_STRSZ) runs past the end of the file")

    def s(val: int, what: str) -> str:
        return r.cstring(str_off + val, str_end, what)

    for tag, val in entries:
        if tag == _DT_NEEDED:
            info.needed.append(s(val, "DT_NEEDED"))
        elif tag == _DT_SONAME:
            info.soname = s(val, "DT_SONAME")
        elif tag == _DT_RPATH:
            info.rpath.extend(p for p in s(val, "DT_RPATH").split(":") if p)
        elif tag == _DT_RUNPATH:
            info.runpath.extend(p for p in s(val, "DT_RUNPATH").split(":") if p)
        elif tag == _DT_FLAGS_1:
            info.nodeflib = bool(val & _DF_1_NODEFLIB)
    if _DT_SYMTAB in first:
        info.functions = _exported_functions(r, first, file_offset, str_off, str_end)
    return info


def _symbol_count(r: _Reader, first: Dict[int, int], file_offset) -> int:
    """Number of .dynsym entries, from DT_HASH's nchain or by walking DT_GNU_HASH."""
    if _DT_HASH in first:
        _, nchain = r.unpack("II", file_offset(first[_DT_HASH], "DT_HASH"), "DT_HASH header")
        return nchain
    if _DT_GNU_HASH not in first:
        return 0
    base = file_offset(first[_DT_GNU_HASH], "DT_GNU_HASH")
    nbuckets, symoffset, bloom_size, _ = r.unpack("IIII", base, "DT_GNU_HASH header")
    word = 8 if r.is64 else 4
    buckets = base + 16 + bloom_size * word
    if nbuckets > _MAX_SYMBOLS or bloom_size > _MAX_SYMBOLS:
        raise ElfError(f"{r.path}: DT_GNU_HASH has an implausible size")
    if buckets + 4 * nbuckets > len(r.data):
        raise ElfError(f"{r.path}: DT_GNU_HASH buckets run past the end of the file")
    top = max(struct.unpack_from(f"{r.end}{nbuckets}I", r.data, buckets), default=0)
    if top < symoffset:
        return symoffset
    chains = buckets + 4 * nbuckets
    i = top
    while True:
        if i - symoffset > _MAX_SYMBOLS:
            raise ElfError(f"{r.path}: DT_GNU_HASH chain does not end")
        (h,) = r.unpack("I", chains + 4 * (i - symoffset), "DT_GNU_HASH chain")
        if h & 1:
            return i + 1
        i += 1


def _exported_functions(r: _Reader, first: Dict[int, int], file_offset, str_off: int,
                        str_end: int) -> List[str]:
    count = _symbol_count(r, first, file_offset)
    if count > _MAX_SYMBOLS:
        raise ElfError(f"{r.path}: {count} dynamic symbols is implausible")
    sym_off = file_offset(first[_DT_SYMTAB], "DT_SYMTAB")
    entsize = first.get(_DT_SYMENT, 24 if r.is64 else 16)
    if entsize < (24 if r.is64 else 16):
        raise ElfError(f"{r.path}: DT_SYMENT {entsize} is too small")
    if sym_off + count * entsize > len(r.data):
        raise ElfError(f"{r.path}: the dynamic symbol table runs past the end of the file")
    names = set()
    for i in range(1, count):
        pos = sym_off + i * entsize
        if r.is64:
            st_name, st_info, st_other, st_shndx = r.unpack("IBBH", pos, "symbol")
        else:
            st_name, _, _, st_info, st_other, st_shndx = r.unpack("IIIBBH", pos, "symbol")
        kind, bind, vis = st_info & 0xF, st_info >> 4, st_other & 3
        if (st_shndx != 0 and kind in (_STT_FUNC, _STT_GNU_IFUNC)
                and bind in (_STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE) and vis in (0, 3)):
            names.add(r.cstring(str_off + st_name, str_end, f"symbol {i}'s name"))
    return sorted(names)


# ---- where DT_NEEDED entries resolve (as glibc's ld.so searches) ----

_MULTIARCH = {62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 40: "arm-linux-gnueabihf",
              3: "i386-linux-gnu", 243: "riscv64-linux-gnu"}
# ld.so.cache entry flags: FLAG_ELF_LIBC6 | the architecture bits, per e_machine and class.
_CACHE_ARCH = {(62, 64): 0x0303, (183, 64): 0x0a03, (243, 64): 0x1003, (40, 32): 0x0903,
               (3, 32): 0x0003}


def _default_dirs(machine: int, elf_class: int) -> List[str]:
    out = []
    if machine in _MULTIARCH:
        out += [f"/lib/{_MULTIARCH[machine]}", f"/usr/lib/{_MULTIARCH[machine]}"]
    if elf_class == 64:
        out += ["/lib64", "/usr/lib64"]
    return out + ["/lib", "/usr/lib"]


def _ld_cache(path: str = "/etc/ld.so.cache") -> Dict[Tuple[str, int], str]:
    """(soname, flags) -> path from glibc's cache (the "glibc-ld.so.cache1.1" format)."""
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 20)
    except OSError:
        return {}
    magic = b"glibc-ld.so.cache1.1"
    start = data.find(magic)
    if start < 0 or start + 48 > len(data):
        return {}
    nlibs, _ = struct.unpack_from("<II", data, start + 20)
    out: Dict[Tuple[str, int], str] = {}
    for i in range(nlibs):
        pos = start + 48 + 24 * i
        if pos + 24 > len(data):
            break
        flags, key, value = struct.unpack_from("<iII", data, pos)

        def cstr(o: int) -> Optional[str]:
            end = data.find(b"\0", o)
            return None if o >= len(data) or end < 0 else data[o:end].decode("utf-8", "replace")
        k, v = cstr(key), cstr(value)
        if k and v:
            out.setdefault((k, flags & 0xFFFF), v)
    return out


def host_machine() -> int:
    """e_machine of this process's executable (the machine libedgert loads for)."""
    with open("/proc/self/exe", "rb") as f:
        head = f.read(20)
    return int.from_bytes(head[18:20], sys.byteorder)


# ---- Foreign files only -------------------------------------------------
# What follows resolves DT_NEEDED entries of a file libedgert cannot load in
# this process (another machine, ELF32, the other byte order: a board's
# library inspected on a workstation). For a native file the CLI asks the
# loader itself (_edgert.plan_dependencies, src/deps.c), so its answer and a
# load's cannot differ; do not use resolve_needed for native files.

def _process_libraries() -> Dict[str, str]:
    """basename -> path, and path -> path, of every file mapped in this process."""
    out: Dict[str, str] = {}
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    p = parts[5].rstrip("\n")
                    out.setdefault(os.path.basename(p), p)
                    out.setdefault(p, p)
    except OSError:
        pass
    return out


def trusted_folder(path: str) -> bool:
    """True when `path` and every folder above it are owned by root and not
    writable by group or others: a file no unprivileged user can replace."""
    p = os.path.realpath(path)
    while True:
        try:
            st = os.stat(p)
        except OSError:
            return False
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


def _matches(candidate: str, info: ElfInfo) -> bool:
    try:
        other = read_elf(candidate)
    except (OSError, ElfError):
        return False
    return other.machine == info.machine and other.elf_class == info.elf_class


def _expand(entry: str, origin: str, info: ElfInfo) -> str:
    lib = "lib64" if info.elf_class == 64 else "lib"
    for key, val in (("ORIGIN", origin), ("LIB", lib), ("PLATFORM", os.uname().machine)):
        entry = entry.replace("${" + key + "}", val).replace("$" + key, val)
    return entry


def resolve_needed(info: ElfInfo) -> List[Dict[str, Any]]:
    """Where each DT_NEEDED entry of `info` resolves, in ld.so's order
    (DT_RPATH when there is no DT_RUNPATH, LD_LIBRARY_PATH, DT_RUNPATH with
    $ORIGIN/$LIB/$PLATFORM expanded against the file's real folder, the
    ld.so.cache, the default folders). One dict per entry: ``name``,
    ``path`` (None when not found), ``via`` (which step found it),
    ``in_process`` (this process already maps a file of that name),
    ``trusted`` (root-owned, not writable by others, up to /) and
    ``needs_listing`` (found, and neither: a verified load must be given its
    hash)."""
    origin = os.path.dirname(os.path.realpath(info.path))
    cache = _ld_cache()
    arch = _CACHE_ARCH.get((info.machine, info.elf_class))
    mapped = _process_libraries()
    env = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    out: List[Dict[str, Any]] = []
    for name in info.needed:
        found: Optional[str] = None
        via = None
        if "/" in name:
            found, via = (name, "path") if os.path.isfile(name) else (None, None)
        else:
            steps: List[Tuple[str, List[str]]] = []
            if not info.runpath:
                steps.append(("DT_RPATH", [_expand(p, origin, info) for p in info.rpath]))
            steps.append(("LD_LIBRARY_PATH", env))
            steps.append(("DT_RUNPATH", [_expand(p, origin, info) for p in info.runpath]))
            for label, dirs in steps:
                for d in dirs:
                    cand = os.path.join(d, name)
                    if os.path.isfile(cand) and _matches(cand, info):
                        found, via = cand, label
                        break
                if found:
                    break
            if not found and not info.nodeflib and arch is not None:
                cached = cache.get((name, arch))
                if cached and os.path.isfile(cached):
                    found, via = cached, "ld.so.cache"
            if not found and not info.nodeflib:
                for d in _default_dirs(info.machine, info.elf_class):
                    cand = os.path.join(d, name)
                    if os.path.isfile(cand) and _matches(cand, info):
                        found, via = cand, "default folder"
                        break
        in_process = name in mapped or (found is not None and os.path.realpath(found) in mapped)
        trusted = found is not None and trusted_folder(found)
        out.append({"name": name, "path": found, "via": via, "in_process": in_process,
                    "trusted": trusted,
                    "needs_listing": found is not None and not in_process and not trusted})
    return out
