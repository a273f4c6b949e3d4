"""The ``edgert`` command line (console script ``edgert``; ``python -m edgert``).

Conventions of ``sha256sum -c``, ``minisign`` and ``cosign``: exit 0 when
everything holds, 1 when a check fails (a hash, a symbol, a signature, a
contained crash), 2 for usage and I/O errors (a missing file, a document that
is not a manifest, a file that is not ELF, an unknown type name). ``--json``
prints one JSON object on stdout (errors included: ``{"ok": false, "error":
{...}}``); ``--quiet`` prints only what went wrong. Schemas: docs/cli.md.

Invariant: every failure path ends in :class:`_Fail` (exit 2 or 1 with one
message naming the problem) or a per-item FAILED line; no traceback reaches
the user for bad input.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import sys
import time
from typing import Any, Dict, List, NoReturn, Optional, Sequence, TextIO

from .errors import EdgertError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_BUF = 1 << 20
_PROGRESS_MIN = 32 << 20  # files from this size show progress on a terminal


class _Fail(Exception):
    """Ends the command: `code` 2 (usage, I/O) or 1 (a check failed)."""

    def __init__(self, message: str, code: int = EXIT_USAGE, kind: str = "usage") -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Fail(f"{self.prog}: {message}")


class _Out:
    """Where results go: plain lines, or one JSON object at the end."""

    def __init__(self, json_mode: bool, quiet: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json = json_mode
        self.quiet = quiet and not json_mode
        self.stdout = stdout
        self.stderr = stderr

    def line(self, text: str) -> None:
        if not self.json and not self.quiet:
            print(text, file=self.stdout)

    def problem(self, text: str) -> None:
        """A failure line: printed even with --quiet."""
        if not self.json:
            print(text, file=self.stdout)

    def warn(self, text: str) -> None:
        if not self.json:
            print(f"edgert: {text}", file=self.stderr)

    def emit(self, obj: Dict[str, Any]) -> None:
        if self.json:
            json.dump(obj, self.stdout, indent=2, sort_keys=False)
            self.stdout.write("\n")


# ---------------------------------------------------------------- hashing

class _Progress:
    """A percentage on stderr, redrawn at most every 0.1 s, only on a terminal."""

    def __init__(self, stream: TextIO, name: str, total: int) -> None:
        self.stream = stream
        self.name = name
        self.total = total
        self.on = total >= _PROGRESS_MIN and _isatty(stream)
        self.last = 0.0
        if self.on:
            self._draw(0)

    def _draw(self, done: int) -> None:
        pct = 100 * done // self.total if self.total else 100
        self.stream.write(f"\r{self.name}: {pct:3d}% of {self.total >> 20} MiB")
        self.stream.flush()

    def update(self, done: int) -> None:
        if self.on:
            now = time.monotonic()
            if now - self.last >= 0.1:
                self.last = now
                self._draw(done)

    def close(self) -> None:
        if self.on:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def sha256_file(path: str, progress_stream: Optional[TextIO] = None) -> str:
    """SHA-256 (lowercase hex) of the file's bytes, as manifests and
    ``ModuleLoader.load(expected_sha256=...)`` take it. ``-`` is stdin."""
    h = hashlib.sha256()
    f: Any
    buf = bytearray(_BUF)
    view = memoryview(buf)
    if path == "-":
        f = sys.stdin.buffer
        close = False
        total = 0
    else:
        f = open(path, "rb", buffering=0)
        close = True
        total = os.fstat(f.fileno()).st_size
    prog = _Progress(progress_stream, path, total) if progress_stream is not None else None
    try:
        done = 0
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            done += n
            if prog is not None:
                prog.update(done)
    finally:
        if prog is not None:
            prog.close()
        if close:
            f.close()
    return h.hexdigest()


def _oserror(exc: OSError, what: str) -> _Fail:
    return _Fail(f"{what}: {exc.strerror or exc}", EXIT_USAGE, "io")


def _core_refusal(exc: EdgertError, path: str) -> _Fail:
    """The core's refusal to read `path` (not an object it can read): its
    message, led by the path unless it names it already."""
    msg = str(exc)
    return _Fail(msg if path in msg else f"{path}: {msg}", EXIT_USAGE, "format")


def cmd_hash(a: argparse.Namespace, out: _Out) -> int:
    results: List[Dict[str, Any]] = []
    errors = 0
    for path in a.files:
        try:
            digest = sha256_file(path, out.stderr)
        except OSError as exc:
            errors += 1
            out.warn(f"{path}: {exc.strerror or exc}")
            results.append({"path": path, "sha256": None, "error": exc.strerror or str(exc)})
            continue
        results.append({"path": path, "sha256": digest, "error": None})
        out.line(f"{digest}  {path}")
    out.emit({"ok": errors == 0, "files": results})
    return EXIT_USAGE if errors else EXIT_OK


# ---------------------------------------------------------------- ELF

def _read_elf(path: str):  # -> _elf.ElfInfo
    from . import _elf
    try:
        return _elf.read_elf(path)
    except OSError as exc:
        raise _oserror(exc, path)
    except _elf.ElfError as exc:
        raise _Fail(f"{exc} (edgert inspects ELF shared objects)", EXIT_USAGE, "format")


def _is_native(info) -> bool:  # info: _elf.ElfInfo
    """Whether libedgert could load `info` in this process: ELF64 of this
    process's byte order and machine (e_machine of /proc/self/exe)."""
    from . import _elf
    return (info.elf_class == 64 and info.byte_order == sys.byteorder
            and info.machine == _elf.host_machine())


def _needed(info, listed: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
    """The dependency closure of `info`, one dict per object (a needing
    object before its own dependencies). For a file this process could
    load, the loader's own resolution (edgert_module_plan_dependencies):
    the search, the trusted-folder rule and what a load refuses are
    exactly a load's, with `listed` ({path or name: sha256}, a manifest
    entry's "dependencies") as a load would be given them. For another
    machine's file (a board's library on a workstation), _elf's reading of
    the file, which the core cannot do."""
    from . import _elf
    if _is_native(info):
        from . import _edgert
        try:
            rows = _edgert.plan_dependencies(info.path, dependencies=listed or None)
        except OSError as exc:
            raise _oserror(exc, info.path)
        except EdgertError as exc:
            raise _core_refusal(exc, info.path)
        return [{"name": r["name"], "path": r["path"], "via": r["via"],
                 "in_process": r["kind"] == "in_process", "trusted": r["kind"] == "trusted",
                 "needs_listing": r["kind"] in ("unlisted", "mismatch"), "kind": r["kind"],
                 "needed_by": r["needed_by"], "depth": r["depth"], "sha256": r["sha256"],
                 "reason": r["reason"]} for r in rows]
    out = _elf.resolve_needed(info)
    for d in out:
        d.update({"kind": "not_found" if d["path"] is None else "in_process" if d["in_process"]
                  else "trusted" if d["trusted"] else "unlisted",
                  "needed_by": info.path, "depth": 0, "sha256": None, "reason": None})
    return out


# ------------------------------------------------------------- manifests

def _load_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise _oserror(exc, path)
    from . import _edgert
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
    else:
        doc = None
    if not isinstance(doc, dict):
        # The C reader words the problem (line and column), as load_manifest
        # would; it reads the file's bytes itself (text that is not UTF-8 too).
        try:
            _edgert.parse_manifest(path)
        except OSError as exc:
            raise _oserror(exc, path)
        except ValueError as exc:
            raise _Fail(f"{path}: not a valid manifest: {exc}", EXIT_USAGE, "manifest")
        raise _Fail(f"{path}: not a valid manifest: expected a JSON object", EXIT_USAGE, "manifest")
    doc["__text__"] = text
    return doc


def _missing_path_index(message: str) -> Optional[int]:
    """i when the C reader's message is "modules[i].path: ... not found" or
    "... is not a regular file" (a missing module, not a bad document)."""
    import re
    m = re.match(r"modules\[(\d+)\]\.path: .*(not found|is not a regular file)", message)
    return int(m.group(1)) if m else None


def _check_document(path: str) -> tuple:
    """(doc, modules, missing): the manifest checked by libedgert's reader,
    with its modules; `missing` maps the index of each module whose file is
    absent to the reader's words. Raises _Fail(2) for a bad document."""
    from . import _edgert
    doc = _load_json(path)
    text = doc.pop("__text__")
    base = os.path.dirname(os.path.abspath(path))
    modules = doc.get("modules")
    missing: Dict[int, str] = {}
    while True:
        try:
            _edgert.parse_manifest_text(text, base)
            break
        except ValueError as exc:
            i = _missing_path_index(str(exc))
            if i is None or not isinstance(modules, list) or i >= len(modules):
                raise _Fail(f"{path}: not a valid manifest: {exc}", EXIT_USAGE, "manifest")
            # Keep checking the rest of the document without the absent file.
            orig = [j for j in range(len(modules)) if j not in missing]
            missing[orig[i]] = str(exc).split(": ", 1)[1]
            rest = dict(doc, modules=[m for j, m in enumerate(modules) if j not in missing])
            text = json.dumps(rest)
    return doc, modules or [], missing


def _write_manifest(path: str, doc: Dict[str, Any]) -> None:
    from . import _edgert
    text = json.dumps(doc, indent=2) + "\n"
    base = os.path.dirname(os.path.abspath(path))
    try:
        _edgert.parse_manifest_text(text, base)
    except ValueError as exc:
        raise _Fail(f"{path}: the result would not be a valid manifest: {exc}", EXIT_USAGE, "manifest")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise _oserror(exc, path)


def _note_signature(path: str, out: _Out) -> None:
    if os.path.exists(path + ".sig"):
        out.warn(f"{path}.sig no longer matches {path}: sign it again (edgert sign)")


def cmd_manifest_new(a: argparse.Namespace, out: _Out) -> int:
    if os.path.lexists(a.path) and not a.force:
        raise _Fail(f"{a.path}: already exists (use --force to overwrite it)")
    doc = {"schema_version": 1, "modules": []}
    _write_manifest(a.path, doc)
    out.line(f"{a.path}: new manifest")
    out.emit({"ok": True, "manifest": a.path})
    return EXIT_OK


def _contract_from_args(a: argparse.Namespace) -> Dict[str, Any]:
    from . import ABIContract, ManifestError
    if a.decl is not None:
        from_c = getattr(ABIContract, "from_c", None)
        if from_c is None:
            raise _Fail("--decl: C declarations need edgert.ABIContract.from_c, which this "
                        "edgert does not have; give --func NAME --args T1,T2 --ret T instead")
        try:
            return from_c(a.decl).to_dict()
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise _Fail(f"--decl {a.decl!r}: {exc}")
    if a.func is None:
        raise _Fail("manifest add: give --func NAME (with --args and --ret) or --decl")
    names = _split_types(a.args) if a.args else []
    d = {"function_name": a.func, "arg_types": names, "return_type": a.ret}
    try:
        return ABIContract.from_manifest(d).to_dict()
    except ManifestError as exc:
        raise _Fail(f"--func {a.func}: {exc}")


def cmd_manifest_add(a: argparse.Namespace, out: _Out) -> int:
    contract = _contract_from_args(a)
    doc, modules, missing = _check_document(a.path)
    if missing:
        i = min(missing)
        raise _Fail(f"{a.path}: modules[{i}] {missing[i]}: fix or remove it first", EXIT_USAGE, "manifest")
    info = _read_elf(a.lib)
    name = contract["function_name"]
    if name not in info.functions:
        raise _Fail(f"{a.lib} does not export a function {name!r} (edgert inspect {a.lib} "
                    "lists what it exports)", EXIT_USAGE, "symbol")
    base = os.path.dirname(os.path.abspath(a.path))
    try:
        digest = sha256_file(a.lib)
    except OSError as exc:
        raise _oserror(exc, a.lib)
    entry = _find_module(modules, base, a.lib)
    if entry is None:
        entry = {"path": os.path.relpath(os.path.abspath(a.lib), base), "sha256": digest,
                 "contracts": []}
        modules.append(entry)
    else:
        if entry["sha256"].lower() != digest:
            out.warn(f"{entry['path']}: sha256 updated to the file's current {digest}")
            entry["sha256"] = digest
        if any(c.get("function_name") == name for c in entry["contracts"]):
            raise _Fail(f"{a.path}: {entry['path']} already has a contract for {name!r}")
    entry["contracts"].append(contract)
    doc["modules"] = modules
    _write_manifest(a.path, doc)
    _note_signature(a.path, out)
    out.line(f"{a.path}: {entry['path']}: added {_signature(contract)}")
    out.emit({"ok": True, "manifest": a.path, "module": entry["path"], "sha256": digest,
              "contract": contract})
    return EXIT_OK


def _find_module(modules: List[Dict[str, Any]], base: str, lib: str) -> Optional[Dict[str, Any]]:
    target = os.path.realpath(lib)
    for m in modules:
        p = m.get("path")
        if isinstance(p, str) and os.path.realpath(os.path.join(base, p)) == target:
            return m
    return None


def _signature(c: Dict[str, Any]) -> str:
    ret = c.get("return_type") or "void"
    return f"{ret} {c['function_name']}({', '.join(c['arg_types'])})"


def cmd_manifest_check(a: argparse.Namespace, out: _Out) -> int:
    from . import _elf
    doc, modules, missing = _check_document(a.path)
    base = os.path.dirname(os.path.abspath(a.path))
    results = []
    failed = 0
    for i, m in enumerate(modules):
        rel = m["path"]
        file = os.path.join(base, rel)
        r: Dict[str, Any] = {"path": rel, "ok": False, "reason": None, "sha256": None,
                             "missing_symbols": []}
        if i in missing:
            r["reason"] = f"missing ({missing[i]})"
        else:
            try:
                r["sha256"] = sha256_file(file, out.stderr)
            except OSError as exc:
                r["reason"] = f"cannot read ({exc.strerror or exc})"
            if r["reason"] is None and r["sha256"] != m["sha256"].lower():
                r["reason"] = "sha256 mismatch"
            if r["reason"] is None:
                try:
                    exported = set(_elf.read_elf(file).functions)
                except (OSError, _elf.ElfError) as exc:
                    r["reason"] = f"not a readable ELF shared object ({exc})"
                else:
                    r["missing_symbols"] = [c["function_name"] for c in m["contracts"]
                                            if c["function_name"] not in exported]
                    if r["missing_symbols"]:
                        r["reason"] = "missing symbols: " + ", ".join(r["missing_symbols"])
        r["ok"] = r["reason"] is None
        results.append(r)
        if r["ok"]:
            out.line(f"{rel}: OK")
        else:
            failed += 1
            out.problem(f"{rel}: FAILED ({r['reason']})")
    if failed:
        out.warn(f"WARNING: {failed} of {len(modules)} modules did NOT check out")
    out.emit({"ok": failed == 0, "manifest": a.path, "modules": results})
    return EXIT_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------- inspect

def _manifest_entry(manifest: str, lib: str) -> "tuple[Dict[str, Any], str]":
    """The module entry of `lib` in `manifest` (by path, else by file name,
    else the only one), with the document's check; _Fail if none."""
    doc, modules, missing = _check_document(manifest)
    base = os.path.dirname(os.path.abspath(manifest))
    entry = _find_module(modules, base, lib)
    if entry is None:
        same = [m for m in modules if os.path.basename(m["path"]) == os.path.basename(lib)]
        if len(same) == 1:
            entry = same[0]
        elif len(modules) == 1:
            entry = modules[0]
    if entry is None:
        listed = ", ".join(m["path"] for m in modules) or "none"
        raise _Fail(f"{lib} is not listed in {manifest} (modules: {listed})")
    return entry, base


def _entry_dependencies(entry: Dict[str, Any], base: str) -> Dict[str, str]:
    """A manifest entry's "dependencies" as load(dependencies=...) takes
    them: {path (relative to the manifest's folder): sha256}."""
    out: Dict[str, str] = {}
    for d in entry.get("dependencies") or []:
        if isinstance(d, dict) and isinstance(d.get("path"), str) and isinstance(d.get("sha256"), str):
            out[os.path.join(base, d["path"])] = d["sha256"]
    return out


def _interposable(info) -> Optional[List[str]]:  # info: _elf.ElfInfo
    """The module's interposable internal calls (edgert_interposable_calls,
    through edgert.interposable_calls: the symbols it defines with default
    visibility and also reaches through its PLT or GOT), or None for another
    machine's file, which the core does not read."""
    if not _is_native(info):
        return None
    from .loader import interposable_calls
    try:
        return interposable_calls(info.path)
    except OSError as exc:
        raise _oserror(exc, info.path)
    except EdgertError as exc:
        raise _core_refusal(exc, info.path)


def cmd_inspect(a: argparse.Namespace, out: _Out) -> int:
    info = _read_elf(a.lib)
    entry: Optional[Dict[str, Any]] = None
    listed: Optional[Dict[str, str]] = None
    if a.manifest:
        entry, base = _manifest_entry(a.manifest, a.lib)
        listed = _entry_dependencies(entry, base)
    deps = _needed(info, listed)
    interposable = _interposable(info)
    report: Dict[str, Any] = {
        "ok": True, "path": a.lib, "class": info.elf_class, "byte_order": info.byte_order,
        "machine": info.machine_name, "e_machine": info.machine, "type": info.type,
        "soname": info.soname, "runpath": info.runpath, "rpath": info.rpath,
        "needed": deps, "functions": info.functions, "interposable": interposable,
        "contracts": None}
    out.line(f"{a.lib}: ELF{info.elf_class} {info.byte_order}-endian {info.type}, {info.machine_name}")
    out.line(f"soname: {info.soname or '(none)'}")
    if info.runpath:
        out.line(f"runpath: {':'.join(info.runpath)}")
    if info.rpath:
        out.line(f"rpath: {':'.join(info.rpath)}")
    out.line(f"needed ({len(deps)}):")
    for d in deps:
        pad = "  " * (d["depth"] + 1)
        if d["path"] is None:
            out.line(f"{pad}{d['name']}: NOT FOUND")
            continue
        where = ("in this process" if d["in_process"] else
                 "trusted system folder" if d["trusted"] else
                 "listed: its hash matches" if d["kind"] == "listed" else
                 "LISTED WITH ANOTHER HASH" if d["kind"] == "mismatch" else
                 "NEEDS LISTING (not verified otherwise)")
        if d["sha256"] and d["needs_listing"]:
            where += f"; sha256 {d['sha256']}"
        if d["reason"] and d["needs_listing"]:
            where += f"; {d['reason']}"
        out.line(f"{pad}{d['name']} => {d['path']} (via {d['via']}; {where})")
    out.line(f"functions ({len(info.functions)}):")
    for f in info.functions:
        out.line(f"  {f}")
    if interposable is None:
        out.line("interposable internal calls: not analysed (another machine's file)")
    elif not interposable:
        out.line("interposable internal calls: none")
    else:
        out.line(f"interposable internal calls ({len(interposable)}): an LD_PRELOAD or "
                 "RTLD_GLOBAL library defining one takes over the module's own calls to it "
                 "(load with isolate_symbols=True, or build with -fvisibility=hidden or "
                 "-Wl,-Bsymbolic):")
        for name in interposable:
            out.line(f"  {name}")
    code = EXIT_OK
    if entry is not None:
        exported = set(info.functions)
        rows = [{"function_name": c["function_name"], "signature": _signature(c),
                 "exported": c["function_name"] in exported} for c in entry["contracts"]]
        report["contracts"] = {"manifest": a.manifest, "module": entry["path"], "results": rows}
        out.line(f"contracts of {entry['path']} in {a.manifest}:")
        for r in rows:
            if r["exported"]:
                out.line(f"  {r['function_name']}: OK")
            else:
                out.problem(f"  {r['function_name']}: FAILED (not exported)")
        if not all(r["exported"] for r in rows):
            report["ok"] = False
            code = EXIT_FAILED
    out.emit(report)
    return code


# ------------------------------------------------------------------ signing

def _signing():
    try:
        from . import signing  # type: ignore[attr-defined]
    except ImportError:
        raise _Fail("signing needs edgert.signing (Ed25519 through OpenSSL), which this "
                    "edgert does not have")
    return signing


def cmd_keygen(a: argparse.Namespace, out: _Out) -> int:
    signing = _signing()
    for p in (a.key, a.pubkey):
        if os.path.lexists(p) and not a.force:
            raise _Fail(f"{p}: already exists (use --force to overwrite it)")
    try:
        kid = signing.generate_key(a.key, a.pubkey)
    except OSError as exc:
        raise _oserror(exc, a.key)
    out.line(f"key id {kid}: private key {a.key}, public key {a.pubkey}")
    out.emit({"ok": True, "key_id": kid, "private_key": a.key, "public_key": a.pubkey})
    return EXIT_OK


def cmd_sign(a: argparse.Namespace, out: _Out) -> int:
    signing = _signing()
    from . import ManifestError
    try:
        sig = signing.sign_manifest(a.manifest, a.key, a.sig)
    except OSError as exc:
        raise _oserror(exc, a.manifest)
    except (ManifestError, ValueError) as exc:
        raise _Fail(f"{a.manifest}: {exc}", EXIT_USAGE, "manifest")
    out.line(f"{a.manifest}: signed, signature in {sig}")
    out.emit({"ok": True, "manifest": a.manifest, "signature": sig})
    return EXIT_OK


def _verify(signing: Any, manifest: str, pubkeys: List[str], state_file: Optional[str],
            sig: Optional[str]) -> Dict[str, Any]:
    """verify_manifest, with its refusals as _Fail(1) and I/O as _Fail(2)."""
    import edgert
    SignatureError = getattr(edgert, "SignatureError", edgert.IntegrityError)
    StateFileError = getattr(edgert, "StateFileError", None)
    try:
        return dict(signing.verify_manifest(manifest, pubkeys, state_file=state_file, sig_path=sig))
    except SignatureError as exc:
        raise _Fail(f"{manifest}: FAILED ({type(exc).__name__}: {exc})", EXIT_FAILED, "signature")
    except OSError as exc:
        kind = "state_file" if StateFileError and isinstance(exc, StateFileError) else "io"
        raise _Fail(f"{manifest}: {exc}", EXIT_USAGE, kind)
    except ValueError as exc:
        raise _Fail(f"{manifest}: {exc}", EXIT_USAGE, "manifest")


def cmd_verify(a: argparse.Namespace, out: _Out) -> int:
    signing = _signing()
    res = _verify(signing, a.manifest, a.pubkey, a.state_file, a.sig)
    out.line(f"{a.manifest}: OK (key {res.get('key_id')}, version {res.get('version')}, "
             f"expires {res.get('expires')})")
    out.emit({"ok": True, "manifest": a.manifest, "key_id": res.get("key_id"),
              "version": res.get("version"), "expires": res.get("expires")})
    return EXIT_OK


# -------------------------------------------------------------- call, report

_INT_TYPES = {"c_byte", "c_ubyte", "c_short", "c_ushort", "c_int", "c_uint", "c_long", "c_ulong",
              "c_longlong", "c_ulonglong", "c_size_t", "c_ssize_t", "c_int8", "c_uint8", "c_int16",
              "c_uint16", "c_int32", "c_uint32", "c_int64", "c_uint64"}
_FLOAT_TYPES = {"c_float", "c_double", "c_longdouble"}


def _split_types(text: str) -> List[str]:
    """--args "T1,T2": type names split at the commas outside parentheses, so
    a callback type "CFUNCTYPE(c_int, c_int)" stays one name."""
    names, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            names.append(cur.strip())
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    names.append(cur.strip())
    return names


def _convert(text: str, ctype: Any, i: int) -> Any:
    """A command-line word -> the Python value the contract's type takes;
    a POINTER(number) takes comma-separated numbers (a ctypes array, printed after)."""
    where = f"argument {i + 1} ({text!r})"
    if ctype is None:
        raise _Fail(f"{where}: void is not an argument type")
    if isinstance(ctype, type) and issubclass(ctype, ctypes._Pointer):
        item = ctype._type_
        words = [w for w in text.strip("[]").split(",") if w.strip()]
        values = [_convert(w.strip(), item, i) for w in words]
        return (item * len(values))(*values)
    name = ctype.__name__
    try:
        if ctype is ctypes.c_bool:
            low = text.lower()
            if low in ("1", "true", "yes"):
                return True
            if low in ("0", "false", "no"):
                return False
            raise ValueError("expected true or false")
        if ctype is ctypes.c_char_p:
            return None if text == "NULL" else os.fsencode(text)
        if ctype is ctypes.c_void_p or issubclass(ctype, ctypes._CFuncPtr):  # type: ignore[attr-defined]
            # a CFUNCTYPE argument from the command line: an address or NULL
            return None if text in ("NULL", "0") else int(text, 0)
        if ctype in (ctypes.c_char,):
            return os.fsencode(text)
        if ctype in (ctypes.c_float, ctypes.c_double, ctypes.c_longdouble):
            return float(text)
        return int(text, 0)
    except ValueError as exc:
        raise _Fail(f"{where}: not a {name}: {exc}")


def _printable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, ctypes.Array):
        return [_printable(x) for x in v]
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return repr(v)
    return v


def cmd_call(a: argparse.Namespace, out: _Out) -> int:
    from . import (ABIContract, ExplicitFallback, IntegrityError, KernelCrash, ManifestError,
                   ModuleFormatError, ModuleLoader, SymbolNotFoundError)
    expected = a.sha256
    if a.manifest:
        if a.args is not None or a.ret is not None or a.decl is not None:
            raise _Fail("call: give the contract by --manifest or by --args/--ret/--decl, not both")
        if a.pubkey:
            _verify(_signing(), a.manifest, a.pubkey, a.state_file, None)
        doc, modules, missing = _check_document(a.manifest)
        base = os.path.dirname(os.path.abspath(a.manifest))
        entry = _find_module(modules, base, a.lib)
        if entry is None:
            raise _Fail(f"{a.lib} is not listed in {a.manifest}")
        found = [c for c in entry["contracts"] if c["function_name"] == a.func]
        if not found:
            raise _Fail(f"{a.manifest}: {entry['path']} has no contract for {a.func!r}")
        contract = ABIContract.from_manifest(found[0])
        if expected and expected.lower() != entry["sha256"].lower():
            raise _Fail(f"--sha256 differs from the manifest's sha256 for {entry['path']}")
        expected = entry["sha256"]
    elif a.decl is not None:
        from_c = getattr(ABIContract, "from_c", None)
        if from_c is None:
            raise _Fail("--decl: C declarations need edgert.ABIContract.from_c, which this "
                        "edgert does not have; give --args T1,T2 --ret T instead")
        try:
            contract = from_c(a.decl)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise _Fail(f"--decl {a.decl!r}: {exc}")
        if contract.function_name != a.func:
            raise _Fail(f"--decl declares {contract.function_name!r}, not {a.func!r}")
    else:
        names = _split_types(a.args) if a.args else []
        try:
            contract = ABIContract.from_manifest(
                {"function_name": a.func, "arg_types": names, "return_type": a.ret})
        except ManifestError as exc:
            raise _Fail(f"{a.func}: {exc}")
    if len(a.values) != len(contract.arg_types):
        raise _Fail(f"{a.func} takes {len(contract.arg_types)} argument(s) "
                    f"({_signature(contract.to_dict())}), {len(a.values)} given")
    values = [_convert(t, ct, i) for i, (t, ct) in enumerate(zip(a.values, contract.arg_types))]
    loader = ModuleLoader()
    try:
        loader.load(a.lib, [contract], expected_sha256=expected)
    except OSError as exc:
        raise _oserror(exc, a.lib)
    except IntegrityError as exc:
        raise _Fail(f"{a.lib}: FAILED (IntegrityError: {exc})", EXIT_FAILED, "integrity")
    except SymbolNotFoundError as exc:
        raise _Fail(f"{a.lib}: FAILED (SymbolNotFoundError: {exc})", EXIT_FAILED, "symbol")
    except (ModuleFormatError, ValueError, TypeError) as exc:
        raise _Fail(f"{a.lib}: {exc}", EXIT_USAGE, "format")
    fn = loader.function(a.func)

    def reference(*args: Any) -> Any:  # never called: fallback is off
        raise AssertionError("unreachable")

    call_args = [v for v in values]
    result: Dict[str, Any] = {"ok": False, "function": a.func, "signature": _signature(contract.to_dict()),
                              "sha256": loader.sha256, "result": None, "buffers": None, "crash": None,
                              "error": None}
    from . import CompiledModeFailure
    try:
        value = ExplicitFallback.run_with_guard(fn, reference, *call_args)
    except CompiledModeFailure as exc:
        cause = exc.__cause__
        if isinstance(cause, KernelCrash):
            result["crash"] = {"signal": cause.signal_name, "address": cause.address,
                               "message": str(cause)}
            out.problem(f"{a.func}: CRASHED (contained: {cause})")
            out.emit(result)
            return EXIT_FAILED
        if isinstance(cause, (TypeError, OverflowError, ValueError)):
            raise _Fail(f"{a.func}: {cause}")
        result["error"] = f"{type(cause).__name__}: {cause}"
        out.problem(f"{a.func}: FAILED ({result['error']})")
        out.emit(result)
        return EXIT_FAILED
    result["ok"] = True
    result["result"] = _printable(value)
    bufs = {str(i + 1): _printable(v) for i, v in enumerate(call_args) if isinstance(v, ctypes.Array)}
    result["buffers"] = bufs or None
    out.line(f"{a.func} = {value!r}")
    for k, v in bufs.items():
        out.line(f"  argument {k} after the call: {v}")
    out.emit(result)
    return EXIT_OK


def cmd_report(a: argparse.Namespace, out: _Out) -> int:
    import edgert
    from . import IntegrityError, ModuleFormatError, SymbolNotFoundError
    _check_document(a.manifest)  # a bad document or a missing file: exit 2, named
    kwargs: Dict[str, Any] = {}
    if a.pubkey:
        _signing()
        kwargs = {"trusted_keys": a.pubkey, "state_file": a.state_file}
    SignatureError = getattr(edgert, "SignatureError", None)
    try:
        m = edgert.load_manifest(a.manifest, **kwargs)
    except OSError as exc:
        raise _oserror(exc, a.manifest)
    except (IntegrityError, SymbolNotFoundError) as exc:
        kind = "signature" if SignatureError and isinstance(exc, SignatureError) else "load"
        raise _Fail(f"{a.manifest}: FAILED ({type(exc).__name__}: {exc})", EXIT_FAILED, kind)
    except (ModuleFormatError, ValueError) as exc:
        raise _Fail(f"{a.manifest}: {exc}", EXIT_USAGE, "manifest")
    entries = edgert.read_manifest(a.manifest)
    mods = []
    with m:
        for e in entries:
            loader = m[e["path"]]
            fns = []
            for c in e["contracts"]:
                fns.append({"function_name": c["function_name"], "signature": _signature(c),
                            "address": loader.address_of(c["function_name"])})
            mods.append({"path": e["path"], "file": e["file"], "sha256": loader.sha256,
                         "functions": fns})
    out.line(f"{a.manifest}: {len(mods)} module(s) verified and loaded, nothing called")
    for mod in mods:
        out.line(f"{mod['path']} ({mod['sha256']})")
        for f in mod["functions"]:
            out.line(f"  {f['signature']} at {f['address']:#x}")
    out.emit({"ok": True, "manifest": a.manifest, "modules": mods})
    return EXIT_OK


# ----------------------------------------------------------------- parser

def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON object on stdout (schemas: docs/cli.md)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only what went wrong; the exit status says the rest")
    p = _Parser(prog="edgert", parents=[common],
                description="Hash, inspect, check, sign and smoke-test compiled kernels "
                            "for edgert. Exit 0: everything holds; 1: a check failed; "
                            "2: usage or I/O error.")
    from . import __version__
    p.add_argument("--version", action="version", version=f"edgert {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("hash", parents=[common], help="SHA-256 of files, as manifests take it")
    s.add_argument("files", nargs="+", metavar="FILE", help="files to hash ('-' is stdin)")
    s.set_defaults(fn=cmd_hash)

    s = sub.add_parser("inspect", parents=[common],
                       help="architecture, soname, dependencies and exported functions of a library")
    s.add_argument("lib", metavar="LIB")
    s.add_argument("--manifest", metavar="M", help="also check LIB's contracts in manifest M")
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("manifest", parents=[common], help="manifest new|add|check")
    msub = s.add_subparsers(dest="manifest_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    n = msub.add_parser("new", parents=[common], help="start an empty manifest")
    n.add_argument("path", metavar="PATH")
    n.add_argument("--force", action="store_true", help="overwrite an existing file")
    n.set_defaults(fn=cmd_manifest_new)
    n = msub.add_parser("add", parents=[common], help="add a module (hashed now) and a contract")
    n.add_argument("path", metavar="PATH")
    n.add_argument("lib", metavar="LIB")
    n.add_argument("--func", metavar="NAME")
    n.add_argument("--args", metavar="T1,T2", default=None,
                   help="argument types as ctypes names (c_double, LP_c_float, c_size_t...)")
    n.add_argument("--ret", metavar="T", default=None, help="return type (default: void)")
    n.add_argument("--decl", metavar="C", default=None,
                   help='a C declaration, "double mean(const double*, size_t)" '
                        "(needs ABIContract.from_c)")
    n.set_defaults(fn=cmd_manifest_add)
    n = msub.add_parser("check", parents=[common],
                        help="every module present, hash matching, contract symbols exported")
    n.add_argument("path", metavar="PATH")
    n.set_defaults(fn=cmd_manifest_check)

    s = sub.add_parser("keygen", parents=[common], help="make an Ed25519 key pair (PEM)")
    s.add_argument("--key", default="edgert.key", help="private key file (default edgert.key)")
    s.add_argument("--pubkey", default="edgert.pub", help="public key file (default edgert.pub)")
    s.add_argument("--force", action="store_true", help="overwrite existing files")
    s.set_defaults(fn=cmd_keygen)

    s = sub.add_parser("sign", parents=[common], help="sign a manifest (detached MANIFEST.sig)")
    s.add_argument("manifest", metavar="MANIFEST")
    s.add_argument("--key", required=True, metavar="PRIV")
    s.add_argument("--sig", default=None, help="signature file (default MANIFEST.sig)")
    s.set_defaults(fn=cmd_sign)

    s = sub.add_parser("verify", parents=[common], help="check a manifest's signature")
    s.add_argument("manifest", metavar="MANIFEST")
    s.add_argument("--pubkey", required=True, action="append", metavar="PUB",
                   help="a trusted public key (repeat for several)")
    s.add_argument("--state-file", default=None, metavar="F",
                   help="highest accepted version is kept here (rollback check)")
    s.add_argument("--sig", default=None, help="signature file (default MANIFEST.sig)")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("call", parents=[common],
                       help="load verified, call once under the crash guard, print the result")
    s.add_argument("lib", metavar="LIB")
    s.add_argument("func", metavar="FUNC")
    s.add_argument("values", nargs="*", metavar="ARG",
                   help="arguments; a pointer takes comma-separated numbers")
    s.add_argument("--args", default=None, metavar="T1,T2")
    s.add_argument("--ret", default=None, metavar="T")
    s.add_argument("--decl", default=None, metavar="C")
    s.add_argument("--manifest", default=None, metavar="M", help="take the contract and hash from M")
    s.add_argument("--sha256", default=None, help="expected SHA-256 of LIB")
    s.add_argument("--pubkey", action="append", default=None, metavar="PUB",
                   help="with --manifest: verify its signature first")
    s.add_argument("--state-file", default=None, metavar="F")
    s.set_defaults(fn=cmd_call)

    s = sub.add_parser("report", parents=[common],
                       help="load a manifest, call nothing, print what would be bound")
    s.add_argument("manifest", metavar="MANIFEST")
    s.add_argument("--pubkey", action="append", default=None, metavar="PUB",
                   help="verify the manifest's signature with this key")
    s.add_argument("--state-file", default=None, metavar="F")
    s.set_defaults(fn=cmd_report)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command; returns the exit status (0 ok, 1 check failed, 2 usage/I/O)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = _Out("--json" in args, False, sys.stdout, sys.stderr)
    try:
        ns = _parser().parse_args(args)
        out = _Out(getattr(ns, "json", False), getattr(ns, "quiet", False), sys.stdout, sys.stderr)
        return int(ns.fn(ns, out))
    except _Fail as exc:
        if out.json:
            out.emit({"ok": False, "error": {"kind": exc.kind, "message": str(exc),
                                              "exit": exc.code}})
        else:
            print(f"edgert: {exc}" if not str(exc).startswith("edgert") else str(exc),
                  file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_USAGE
    except OSError as exc:  # e.g. stdout or stderr gone, a disk full while writing
        print(f"edgert: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (NotImplementedError, EdgertError) as exc:
        print(f"edgert: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("edgert: interrupted", file=sys.stderr)
        return 130
