"""Signed manifests: keys, .sig files, verification, the version state file.

Every attack in docs/reliability.md ("Signed manifests") is one test here:
tamper (one changed byte), an unknown key, a truncated or malformed .sig,
an expired manifest, a rollback and a replay against a state file, a state
file that cannot be written, and random .sig bytes (hypothesis). The
modules listed are the marker fixture, whose constructor leaves a file: a
refusal must leave no marker (nothing was loaded)."""
import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgert
from edgert import (IntegrityError, ManifestError, ManifestExpiredError, RollbackError,
                    SignatureError, StateFileError, UnknownKeyError, load_manifest)
from edgert import signing
from conftest import fixture_path

FUTURE = "2099-01-01T00:00:00Z"
PAST = "2001-01-01T00:00:00Z"


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def release(tmp_path, monkeypatch):
    """tmp/{libmarker.so, key, key.pub, other, other.pub} and a writer of
    manifests listing the marker module (whose constructor writes tmp/ran)."""
    lib = tmp_path / "libmarker.so"
    shutil.copyfile(fixture_path("loader_marker"), lib)
    marker = tmp_path / "ran"
    monkeypatch.setenv("EDGERT_LOADER_MARKER", str(marker))
    kid = signing.generate_key(tmp_path / "key", tmp_path / "key.pub")
    other = signing.generate_key(tmp_path / "other", tmp_path / "other.pub")

    class R:
        dir = tmp_path
        key = tmp_path / "key"
        pub = tmp_path / "key.pub"
        other_key = tmp_path / "other"
        other_pub = tmp_path / "other.pub"
        key_id = kid
        other_id = other

        @staticmethod
        def manifest(version=1, expires=FUTURE, name="m.json", sign=True, key=None, **extra):
            d = {"schema_version": 1,
                 "modules": [{"path": "libmarker.so", "sha256": sha256_of(lib),
                              "contracts": [{"function_name": "marker_answer", "arg_types": [],
                                             "return_type": "c_int", "calling_convention": "cdecl"}]}]}
            if version is not None:
                d["version"] = version
            if expires is not None:
                d["expires"] = expires
            d.update(extra)
            p = tmp_path / name
            p.write_text(json.dumps(d, indent=1) + "\n")
            if sign:
                signing.sign_manifest(p, key or tmp_path / "key")
            return p

        @staticmethod
        def ran() -> bool:
            return marker.exists()
    return R


# ---- keys and signing --------------------------------------------------------

def test_generate_key_writes_standard_pem_with_a_private_mode(release):
    assert stat.S_IMODE(os.stat(release.key).st_mode) == 0o600
    assert release.pub.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    assert release.key.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    # The id is the first 16 hex digits of SHA-256 of the raw 32-byte key:
    # the DER SubjectPublicKeyInfo of an Ed25519 key ends with those 32 bytes.
    der = base64.b64decode("".join(release.pub.read_text().splitlines()[1:-1]))
    assert len(der) == 44
    assert release.key_id == hashlib.sha256(der[-32:]).hexdigest()[:16]
    assert signing.key_id(release.pub) == signing.key_id(release.key) == release.key_id
    assert release.key_id != release.other_id


def test_generate_key_never_overwrites(release):
    before = release.key.read_bytes()
    with pytest.raises(ValueError, match="already exists: keys are never overwritten"):
        signing.generate_key(release.key, release.dir / "new.pub")
    with pytest.raises(ValueError, match="already exists"):
        signing.generate_key(release.dir / "new", release.pub)
    assert release.key.read_bytes() == before
    assert not (release.dir / "new").exists() and not (release.dir / "new.pub").exists()


def test_good_signature_loads_and_reports_what_it_verified(release):
    m = release.manifest(version=3)
    sig = (release.dir / "m.json.sig").read_text()
    lines = sig.splitlines()
    assert lines[0] == "edgert-signature-v1"
    assert lines[1] == f"key-id: {release.key_id}"
    assert lines[2].startswith("signature: ") and len(lines[2]) == len("signature: ") + 128
    info = signing.verify_manifest(m, [release.pub])
    assert info["key_id"] == release.key_id and info["version"] == 3 and info["expires"] == FUTURE
    assert not release.ran()  # verify loads nothing
    with load_manifest(m, trusted_keys=[release.pub]) as lm:
        assert lm.call("marker_answer") == 42
        assert lm.signature["version"] == 3
    assert release.ran()


def test_trusted_keys_as_pem_bytes_and_keyset(release):
    m = release.manifest()
    ks = signing.KeySet([release.other_pub, release.pub.read_bytes(), release.pub])
    assert ks.key_ids == (release.other_id, release.key_id) and len(ks) == 2
    assert signing.verify_manifest(m, ks)["key_id"] == release.key_id
    assert signing.verify_manifest(m, [release.pub.read_bytes()])["key_id"] == release.key_id
    with load_manifest(m, trusted_keys=ks) as lm:
        assert lm.call("marker_answer") == 42


def test_every_pem_layout_gives_the_same_key(release):
    """The exact `openssl pkey -pubout` layout takes a fast path; CRLF line
    ends, text before the block or no final newline take OpenSSL's generic
    decoder. Both must yield the same key (same id, same verification)."""
    m = release.manifest()
    pem = release.pub.read_bytes()
    variants = [pem, pem.rstrip(b"\n"), pem.replace(b"\n", b"\r\n"),
                b"comment line\n" + pem, pem + b"\n"]
    for v in variants:
        ks = signing.KeySet([v])
        assert ks.key_ids == (release.key_id,), v
        assert signing.verify_manifest(m, ks)["key_id"] == release.key_id
    # One changed base64 character in the 32 key bytes (characters 16..57;
    # the first 16 encode the fixed SPKI header) is another key or no key,
    # never this one. In the header OpenSSL's generic decoder refuses the
    # change or, for the BIT STRING's unused-bits count (character 15),
    # tolerates it: OpenSSL then clears the key's last bit, which gives the
    # same key when that bit was 0 and another key otherwise.
    body = pem.splitlines()[1]
    for i in range(len(body) - 2):
        bad = bytearray(body)
        bad[i] = ord("A") if bad[i] != ord("A") else ord("B")
        v = pem.replace(body, bytes(bad))
        try:
            ks = signing.KeySet([v])
        except ValueError:
            continue
        if ks.key_ids == (release.key_id,):
            assert i == 15, i  # the unused-bits count: the same key bytes
            continue
        with pytest.raises(UnknownKeyError):
            signing.verify_manifest(m, ks)


def test_sign_manifest_to_another_path(release):
    m = release.manifest(sign=False)
    out = signing.sign_manifest(m, release.key, release.dir / "elsewhere.sig")
    assert out == str(release.dir / "elsewhere.sig")
    assert not (release.dir / "m.json.sig").exists()
    with pytest.raises(SignatureError, match="is not signed: no signature file"):
        signing.verify_manifest(m, [release.pub])
    assert signing.verify_manifest(m, [release.pub], sig_path=out)["version"] == 1


def test_openssl_genpkey_keys_work(release):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary on this machine")
    key, pub = release.dir / "std.pem", release.dir / "std.pub.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    subprocess.run([openssl, "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    m = release.manifest(key=key)
    assert signing.verify_manifest(m, [pub])["key_id"] == signing.key_id(pub)
    # And a signature OpenSSL makes itself over the manifest's bytes verifies too.
    raw = release.dir / "raw.sig"
    subprocess.run([openssl, "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in", str(m),
                    "-out", str(raw)], check=True)
    (release.dir / "m.json.sig").write_text(
        f"edgert-signature-v1\nkey-id: {signing.key_id(pub)}\nsignature: {raw.read_bytes().hex()}\n")
    with load_manifest(m, trusted_keys=[pub]) as lm:
        assert lm.call("marker_answer") == 42


def test_signing_refuses_what_verification_would_refuse(release):
    m = release.manifest(version=None, sign=False)
    with pytest.raises(ManifestError, match="^version: a signed manifest must carry"):
        signing.sign_manifest(m, release.key)
    m = release.manifest(expires=None, sign=False)
    with pytest.raises(ManifestError, match="^expires: a signed manifest must carry"):
        signing.sign_manifest(m, release.key)
    m = release.manifest(sign=False)
    with pytest.raises(ValueError, match="is not a private key"):
        signing.sign_manifest(m, release.pub)
    assert not (release.dir / "m.json.sig").exists()


def test_keys_that_are_not_ed25519_public_keys_are_refused(release):
    m = release.manifest()
    with pytest.raises(ValueError, match="is a private key; trust the public key instead"):
        signing.verify_manifest(m, [release.key])
    with pytest.raises(ValueError, match="not a PEM public key"):
        signing.verify_manifest(m, [b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
    with pytest.raises(OSError, match="No such file"):
        signing.verify_manifest(m, [release.dir / "missing.pub"])
    with pytest.raises(ValueError, match="empty"):
        signing.verify_manifest(m, [])
    with pytest.raises(TypeError, match="single str or bytes"):
        signing.verify_manifest(m, str(release.pub))  # type: ignore[arg-type]
    openssl = shutil.which("openssl")
    if openssl is not None:
        rsa = release.dir / "rsa.pem"
        subprocess.run([openssl, "genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", str(rsa)], check=True, capture_output=True)
        out = subprocess.run([openssl, "pkey", "-in", str(rsa), "-pubout"], check=True,
                             capture_output=True).stdout
        with pytest.raises(ValueError, match="not Ed25519"):
            signing.KeySet([out])


# ---- refusals: nothing is loaded ----------------------------------------------

def refused(release, m, exc, match, **kw):
    with pytest.raises(exc, match=match) as info:
        load_manifest(m, trusted_keys=[release.pub], **kw)
    assert not release.ran(), "a refused manifest ran module code"
    return info.value


def test_missing_signature_file(release):
    m = release.manifest(sign=False)
    e = refused(release, m, SignatureError, r"is not signed: no signature file '.*m\.json\.sig'; sign it")
    assert isinstance(e, IntegrityError)
    # Without trusted keys it loads as before.
    with load_manifest(m) as lm:
        assert lm.call("marker_answer") == 42 and lm.signature is None


def test_one_changed_byte_in_the_manifest(release):
    m = release.manifest()
    data = bytearray(m.read_bytes())
    for i in (0, len(data) // 2, len(data) - 1):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        m.write_bytes(bytes(tampered))
        refused(release, m, SignatureError, "does not match its bytes")
    # Trailing whitespace is a change too (exact bytes are signed).
    m.write_bytes(bytes(data) + b" ")
    refused(release, m, SignatureError, "does not match its bytes")


def test_one_changed_byte_in_the_signature(release):
    m = release.manifest()
    sig = release.dir / "m.json.sig"
    text = sig.read_text()
    i = text.index("signature: ") + 20
    sig.write_text(text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1:])
    refused(release, m, SignatureError, "does not match its bytes")


def test_signature_by_an_unknown_key(release):
    m = release.manifest(key=release.other_key)
    e = refused(release, m, UnknownKeyError,
                f"signed by key {release.other_id}, which is not a trusted key "
                f"\\(trusted: {release.key_id}\\)")
    assert isinstance(e, SignatureError)
    # A key-id line forged to name the trusted key does not help.
    sig = release.dir / "m.json.sig"
    sig.write_text(sig.read_text().replace(release.other_id, release.key_id))
    refused(release, m, SignatureError, "does not match its bytes")


@pytest.mark.parametrize("cut", [0, 1, 19, 20, 25, 36, 37, 48, 100, -1])
def test_truncated_signature_file(release, cut):
    m = release.manifest()
    sig = release.dir / "m.json.sig"
    data = sig.read_bytes()
    sig.write_bytes(data[:cut])
    refused(release, m, SignatureError, "empty|truncated|line 1")


@pytest.mark.parametrize("text, match", [
    (b"edgert-signature-v2\nkey-id: 0123456789abcdef\nsignature: " + b"0" * 128 + b"\n",
     "line 1: expected 'edgert-signature-v1'"),
    (b"edgert-signature-v1\nkeyid: 0123456789abcdef\nsignature: " + b"0" * 128 + b"\n",
     "line 2: expected 'key-id: ...'"),
    (b"edgert-signature-v1\nkey-id: 0123456789ABCDEF\nsignature: " + b"0" * 128 + b"\n",
     "line 2: key-id: character 11 is not a lowercase hex digit"),
    (b"edgert-signature-v1\nkey-id: 0123456789abcdef\nsignature: " + b"0" * 130 + b"\n",
     "line 3: signature: expected 128 hex digits, got 130"),
    (b"edgert-signature-v1\nkey-id: 0123456789abcdef\nsignature: " + b"0" * 128 + b"\nmore\n",
     "bytes after the signature line"),
    (b"edgert-signature-v1\r\nkey-id: 0123456789abcdef\nsignature: " + b"0" * 128 + b"\n",
     "line 1: expected"),
    (b"x" * 5000, "larger than the limit of 1024 bytes"),
], ids=["magic", "field", "uppercase", "long", "extra-line", "crlf", "huge"])
def test_malformed_signature_file(release, text, match):
    m = release.manifest()
    (release.dir / "m.json.sig").write_bytes(text)
    refused(release, m, SignatureError, match)


def test_expired(release):
    m = release.manifest(expires=PAST)
    e = refused(release, m, ManifestExpiredError, "expired at 2001-01-01T00:00:00Z")
    assert isinstance(e, SignatureError)
    # The check uses the clock: one second before expiry still verifies.
    from edgert.signing import _read_signed
    info, _ = _read_signed(m, [release.pub], None, None, now=978307199)
    assert info["expires_at"] == 978307200
    with pytest.raises(ManifestExpiredError):
        _read_signed(m, [release.pub], None, None, now=978307200)


@pytest.mark.parametrize("extra, match", [
    ({"version": None}, "^version: manifest .* is signed but carries no \"version\""),
    ({"expires": None}, "^expires: manifest .* is signed but carries no \"expires\""),
])
def test_missing_version_or_expires(release, extra, match):
    m = release.manifest(sign=False, **{"version": 1, "expires": FUTURE, **extra})
    # Signed by hand (sign_manifest refuses these): the signature is fine.
    good = release.manifest(name="good.json")
    del good
    data = m.read_bytes()
    (release.dir / "tmp.json").write_bytes(data)
    raw = _raw_sign(release, data)
    (release.dir / "m.json.sig").write_text(
        f"edgert-signature-v1\nkey-id: {release.key_id}\nsignature: {raw.hex()}\n")
    refused(release, m, ManifestError, match)


def _raw_sign(release, data: bytes) -> bytes:
    """An Ed25519 signature of `data` by release.key, through OpenSSL's CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary on this machine")
    src, out = release.dir / "raw.in", release.dir / "raw.out"
    src.write_bytes(data)
    subprocess.run([openssl, "pkeyutl", "-sign", "-rawin", "-inkey", str(release.key), "-in", str(src),
                    "-out", str(out)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("field, value, match", [
    ("version", 0, "version: expected a positive integer"),
    ("version", -3, "version: expected a positive integer"),
    ("version", 1.5, "version: expected a positive integer"),
    ("version", "2", "version: expected a positive integer, got a string"),
    ("version", 2 ** 60, "version: expected a positive integer"),
    ("expires", "2027-01-01", "expires: '2027-01-01' is not an RFC 3339 UTC time"),
    ("expires", "2027-02-30T00:00:00Z", "is not an RFC 3339 UTC time"),
    ("expires", "2027-01-01T00:00:00+01:00", "is not an RFC 3339 UTC time"),
    ("expires", "2027-01-01T24:00:00Z", "is not an RFC 3339 UTC time"),
    ("expires", 1700000000, "expires: expected an RFC 3339 UTC time string"),
])
def test_invalid_version_or_expires_is_refused_by_the_reader(release, field, value, match):
    m = release.manifest(sign=False, **{field: value})
    with pytest.raises(ManifestError, match=match):
        edgert.read_manifest(m)
    with pytest.raises(ManifestError, match=match):
        signing.sign_manifest(m, release.key)


def test_leap_day_and_unsigned_release_fields(release):
    m = release.manifest(sign=False, expires="2028-02-29T23:59:59Z", version=7)
    assert edgert.read_manifest(m)[0]["path"] == "libmarker.so"


# ---- the version state file ----------------------------------------------------

def test_rollback_and_replay_with_a_state_file(release):
    state = release.dir / "state"
    v1 = release.manifest(version=1, name="v1.json")
    v1_bytes, v1_sig = v1.read_bytes(), (release.dir / "v1.json.sig").read_bytes()
    assert signing.verify_manifest(v1, [release.pub], state_file=state)["previous_version"] == 0
    assert state.read_text() == "edgert-state-v1\nhighest-version: 1\n"
    v5 = release.manifest(version=5, name="v5.json")
    assert signing.verify_manifest(v5, [release.pub], state_file=state)["previous_version"] == 1
    assert state.read_text() == "edgert-state-v1\nhighest-version: 5\n"
    # Equal version: the same release again, allowed.
    with load_manifest(v5, trusted_keys=[release.pub], state_file=state) as lm:
        assert lm.call("marker_answer") == 42
    os.unlink(release.dir / "ran")
    # Rollback: an older, validly signed release.
    v3 = release.manifest(version=3, name="v3.json")
    e = refused(release, v3, RollbackError,
                "version 3 is older than version 5, which this device has already accepted",
                state_file=state)
    assert isinstance(e, SignatureError)
    # Replay: the very bytes and .sig of v1, put back where v5 was.
    v5.write_bytes(v1_bytes)
    (release.dir / "v5.json.sig").write_bytes(v1_sig)
    refused(release, v5, RollbackError, "version 1 is older than version 5", state_file=state)
    with pytest.raises(RollbackError):
        signing.verify_manifest(v5, [release.pub], state_file=state)
    assert state.read_text() == "edgert-state-v1\nhighest-version: 5\n"
    # Without the state file the replayed release verifies: the docs say so.
    assert signing.verify_manifest(v5, [release.pub])["version"] == 1
    # No temporary files are left behind.
    assert sorted(p.name for p in release.dir.iterdir() if p.name.startswith("state")) == ["state"]


def test_state_file_that_cannot_be_written_refuses_the_load(release):
    blocker = release.dir / "not-a-dir"
    blocker.write_text("a file where the state folder should be\n")
    m = release.manifest(version=2)
    e = refused(release, m, StateFileError, "its folder .* cannot be opened",
                state_file=blocker / "state")
    assert isinstance(e, OSError) and not isinstance(e, SignatureError)
    # A state file whose folder exists but where the new file cannot be made.
    state = release.dir / "state"
    state.mkdir()  # a directory in the way of the rename
    refused(release, m, StateFileError, "state file", state_file=state)


def test_state_file_in_a_read_only_folder(release, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        refused(release, release.manifest(), StateFileError, "cannot record version 1",
                state_file=ro / "state")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("content", [
    "", "garbage\n", "edgert-state-v1\nhighest-version: \n", "edgert-state-v1\nhighest-version: 01\n",
    "edgert-state-v1\nhighest-version: 5", "edgert-state-v1\nhighest-version: 5\n\n",
    "edgert-state-v1\nhighest-version: -5\n", "edgert-state-v1\nhighest-version: 0\n",
])
def test_malformed_state_file_refuses(release, content):
    state = release.dir / "state"
    state.write_text(content)
    refused(release, release.manifest(), StateFileError, "is malformed", state_file=state)
    assert state.read_text() == content  # never "repaired" into a lower version


def test_state_file_without_trusted_keys_is_a_usage_error(release):
    with pytest.raises(ValueError, match="needs trusted_keys"):
        load_manifest(release.manifest(), state_file=release.dir / "state")


def test_concurrent_verifiers_never_lower_the_state(release):
    """Processes verifying versions 1..8 at once: the state ends at 8."""
    state = release.dir / "state"
    paths = [release.manifest(version=v, name=f"v{v}.json") for v in range(1, 9)]
    code = ("import sys; from edgert import signing\n"
            "try:\n signing.verify_manifest(sys.argv[1], [sys.argv[2]], state_file=sys.argv[3])\n"
            "except Exception as e:\n print(type(e).__name__)\n")
    procs = [subprocess.Popen([os.sys.executable, "-c", code, str(p), str(release.pub), str(state)],
                              stdout=subprocess.PIPE, text=True) for p in paths]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(o in ("", "RollbackError") for o in outs), outs
    assert state.read_text() == "edgert-state-v1\nhighest-version: 8\n"


# ---- the .sig reader under random input -----------------------------------------

def _valid_sig() -> bytes:
    return b"edgert-signature-v1\nkey-id: 0123456789abcdef\nsignature: " + b"ab" * 64 + b"\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda i, b: _valid_sig()[:i] + bytes([b]) + _valid_sig()[i + 1:],
              st.integers(0, len(_valid_sig()) - 1), st.integers(0, 255)),
    st.builds(lambda i: _valid_sig()[:i], st.integers(0, len(_valid_sig()))),
    st.builds(lambda i, s: _valid_sig()[:i] + s + _valid_sig()[i:],
              st.integers(0, len(_valid_sig())), st.binary(max_size=16)),
))
def test_signature_reader_never_crashes(data):
    try:
        key_id, sig = edgert._edgert.signing_parse_signature(data)
    except SignatureError as e:
        assert str(e).startswith("signature file: ")
        return
    # Accepted: then it is exactly the format, and writes back identically.
    assert data == (b"edgert-signature-v1\nkey-id: " + key_id.encode() + b"\nsignature: "
                    + sig.hex().encode() + b"\n")
