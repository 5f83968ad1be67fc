#!/usr/bin/env python3
"""Parse pssh boxes with independent parsers and print what they find.

Input: hex or base64 tokens on argv, or whitespace-separated tokens on stdin. A token may be
one pssh box, several concatenated boxes (EME "cenc" init data), or a bare PlayReady Object
(the `mspr:pro` / HLS data-URI payload). A token `name=VALUE` is labelled `name` in the output;
`name value` pairs as printed by the Rust test `drm::pssh::tests::print_sample_boxes` work too.

Parsers:
  * Widevine (edef8ba9-…) and W3C common (1077efec-…): pywidevine's PSSH (pymp4 box, protobuf).
  * PlayReady (9a04f079-…): pyplayready's PSSH / WRMHeader (PRO records, WRMHEADER version,
    KIDs in GUID order, ALGID, CHECKSUM, LA_URL); with --key the CHECKSUMs are verified.
  * Our own checks of the WRMHEADER syntax rules (no whitespace between nodes, attributes in
    alphabetical order, explicit end tags) and of the Widevine protobuf's canonical encoding.

Options:
  --json          one JSON document (a list, one entry per box) instead of text
  --key HEX       content key(s) for CHECKSUM verification (repeatable; tried for every KID)

Exit status 1 if any token fails to parse or a check fails.

Setup: python3 -m venv /work/venv-drm && /work/venv-drm/bin/pip install pywidevine pyplayready
"""

import base64
import binascii
import json
import re
import sys
import uuid

WIDEVINE = uuid.UUID("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
PLAYREADY = uuid.UUID("9a04f079-9840-4286-ab92-e65be0885f95")
COMMON = uuid.UUID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b")
SYSTEMS = {WIDEVINE: "widevine", PLAYREADY: "playready", COMMON: "common"}


def decode_token(tok):
    t = tok.strip()
    if re.fullmatch(r"(0x)?[0-9a-fA-F]+", t) and len(t) % 2 == 0:
        return bytes.fromhex(t[2:] if t.startswith("0x") else t)
    t = t.replace("-", "+").replace("_", "/")
    return base64.b64decode(t + "=" * (-len(t) % 4), validate=True)


def split_boxes(data):
    """Whole top-level boxes; raises ValueError if the bytes are not a sequence of pssh boxes."""
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise ValueError("truncated box header")
        size = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] != b"pssh":
            raise ValueError(f"not a pssh box: {data[pos + 4:pos + 8]!r}")
        if size < 32 or pos + size > len(data):
            raise ValueError(f"bad box size {size} at {pos} (have {len(data) - pos})")
        out.append(data[pos:pos + size])
        pos += size
    return out


def widevine_fields(init_data):
    from pywidevine.license_protocol_pb2 import WidevinePsshData

    msg = WidevinePsshData()
    msg.ParseFromString(init_data)
    fields = {
        "key_ids": [str(uuid.UUID(bytes=k)) if len(k) == 16 else k.hex() for k in msg.key_ids],
        "canonical_encoding": msg.SerializeToString() == init_data,
    }
    if msg.HasField("provider"):
        fields["provider"] = msg.provider
    if msg.HasField("content_id"):
        fields["content_id"] = msg.content_id.decode("utf-8", "backslashreplace")
    if msg.HasField("protection_scheme"):
        fields["protection_scheme"] = msg.protection_scheme.to_bytes(4, "big").decode("ascii", "replace")
    if msg.HasField("algorithm"):
        fields["algorithm"] = msg.algorithm
    return fields


def wrmheader_syntax(xml):
    """Problems with the PlayReady Header Specification's syntax rules (empty list if none)."""
    problems = []
    if re.search(r">\s+<", xml):
        problems.append("whitespace between nodes")
    if re.search(r"/>", xml):
        problems.append("self-closing element")
    if xml.startswith("\ufeff"):
        problems.append("byte-order mark")
    for m in re.finditer(r"<([A-Za-z_]+)((?:\s+[A-Za-z_:]+=\"[^\"]*\")*)\s*>", xml):
        # Namespace declarations come first, as in canonical XML and Microsoft's examples.
        names = [n for n in re.findall(r"([A-Za-z_:]+)=\"[^\"]*\"", m.group(2)) if n != "xmlns"]
        if names != sorted(names):
            problems.append(f"attributes of <{m.group(1)}> not in alphabetical order: {names}")
    if 'xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"' not in xml:
        problems.append("xmlns missing")
    return problems


def playready_fields(pro_or_box, keys):
    from pyplayready.system.pssh import PSSH as PrPssh

    pr = PrPssh(pro_or_box)
    headers = []
    ok = True
    for h in pr.wrm_headers:
        xml = h.dumps()
        syntax = wrmheader_syntax(xml)
        ok &= not syntax
        kids = []
        for k in h.key_ids:
            entry = {
                "kid": str(k.value),
                "algid": k.alg_id.value,
                "checksum": base64.b64encode(k.checksum).decode() if k.checksum else None,
            }
            if keys and k.checksum:
                entry["checksum_ok"] = any(k.verify(key) for key in keys)
                ok &= entry["checksum_ok"]
            kids.append(entry)
        headers.append({
            "version": h.version.value,
            "kids": kids,
            "la_url": h.la_url,
            "syntax_problems": syntax,
            "xml": xml,
        })
    return headers, ok


def check_box(box, keys):
    from pywidevine.pssh import PSSH as WvPssh

    size = int.from_bytes(box[:4], "big")
    version = box[8]
    system = uuid.UUID(bytes=box[12:28])
    entry = {
        "size": size,
        "version": version,
        "system_id": str(system),
        "system": SYSTEMS.get(system, "unknown"),
    }
    ok = True
    if system in (WIDEVINE, COMMON):
        p = WvPssh(box, strict=True)
        entry["parser"] = "pywidevine"
        entry["box_version"] = p.version
        entry["box_key_ids"] = [str(k) for k in p.key_ids] if (system == WIDEVINE or p.version == 1) else []
        entry["data_size"] = len(p.init_data)
        if system == WIDEVINE:
            entry["widevine"] = widevine_fields(p.init_data)
            ok &= entry["widevine"]["canonical_encoding"]
        ok &= p.dump() == box
    elif system == PLAYREADY:
        entry["parser"] = "pyplayready"
        off = 28 if version == 0 else 32 + 16 * int.from_bytes(box[28:32], "big")
        data_size = int.from_bytes(box[off:off + 4], "big")
        pro = box[off + 4:off + 4 + data_size]
        ok &= off + 4 + data_size == len(box)
        entry["pro_length"] = int.from_bytes(pro[:4], "little") if len(pro) >= 4 else None
        entry["pro_records"] = int.from_bytes(pro[4:6], "little") if len(pro) >= 6 else None
        ok &= entry["pro_length"] == len(pro)
        entry["headers"], hok = playready_fields(box, keys)
        ok &= hok
    else:
        ok = False
        entry["error"] = "unknown system id"
    entry["ok"] = bool(ok)
    return entry


def check_token(label, tok, keys):
    try:
        data = decode_token(tok)
    except (ValueError, binascii.Error) as e:
        return [{"label": label, "ok": False, "error": f"not hex or base64: {e}"}]
    try:
        boxes = split_boxes(data)
    except ValueError as box_error:
        # A bare PlayReady Object (mspr:pro)?
        try:
            headers, ok = playready_fields(data, keys)
            ok &= int.from_bytes(data[:4], "little") == len(data)
            return [{"label": label, "system": "playready", "parser": "pyplayready", "pro_only": True,
                     "pro_length": len(data), "headers": headers, "ok": bool(ok)}]
        except Exception as e:  # noqa: BLE001 - report both failures
            return [{"label": label, "ok": False, "error": f"{box_error}; not a PRO either: {e}"}]
    out = []
    for i, b in enumerate(boxes):
        name = label if len(boxes) == 1 else f"{label}[{i}]"
        try:
            entry = check_box(b, keys)
        except Exception as e:  # noqa: BLE001 - any parser failure is a finding
            entry = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.append({"label": name, **entry})
    return out


def print_text(entries):
    for e in entries:
        status = "OK  " if e.get("ok") else "FAIL"
        print(f"{status} {e.get('label')}: {e.get('system', '?')}", end="")
        if "error" in e:
            print(f" error: {e['error']}")
            continue
        if e.get("pro_only"):
            print(f" PRO only, {e['pro_length']} bytes")
        else:
            print(f" pssh v{e['version']} size {e['size']} ({e['parser']})")
        if "box_key_ids" in e:
            print(f"     key ids: {', '.join(e['box_key_ids']) or '-'}; data {e['data_size']} bytes")
        if "widevine" in e:
            w = e["widevine"]
            extra = " ".join(f"{k}={w[k]!r}" for k in ("provider", "content_id", "algorithm") if k in w)
            print(f"     widevine: protection_scheme={w.get('protection_scheme', '(absent)')} {extra}".rstrip())
            print(f"     canonical protobuf encoding: {w['canonical_encoding']}")
        if "pro_length" in e and not e.get("pro_only"):
            print(f"     PRO length {e['pro_length']}, records {e['pro_records']}")
        for h in e.get("headers", []):
            print(f"     WRMHEADER {h['version']}  LA_URL={h['la_url']!r}")
            for k in h["kids"]:
                cs = f" checksum_ok={k['checksum_ok']}" if "checksum_ok" in k else ""
                print(f"       KID {k['kid']} ALGID={k['algid']} CHECKSUM={k['checksum']}{cs}")
            print(f"     syntax: {'; '.join(h['syntax_problems']) or 'ok'}")


def main(argv):
    as_json, keys, tokens = False, [], []
    it = iter(argv)
    for a in it:
        if a == "--json":
            as_json = True
        elif a == "--key":
            keys.append(bytes.fromhex(next(it)))
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            tokens.append(a)
    if not tokens:
        tokens = sys.stdin.read().split()
    # Pair "name value" tokens (the Rust test's output) and split "name=value" ones.
    labelled, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        m = re.fullmatch(r"([A-Za-z][\w.-]{0,40})=([^=].*)", t)
        if m:
            labelled.append((m.group(1), m.group(2)))
        elif re.fullmatch(r"[A-Za-z][\w.-]*", t) and i + 1 < len(tokens) and not _looks_encoded(t):
            labelled.append((t, tokens[i + 1]))
            i += 1
        else:
            labelled.append((f"#{len(labelled) + 1}", t))
        i += 1
    entries = [e for name, tok in labelled for e in check_token(name, tok, keys)]
    if as_json:
        print(json.dumps(entries, indent=2))
    else:
        print_text(entries)
    return 0 if entries and all(e.get("ok") for e in entries) else 1


def _looks_encoded(t):
    """A bare word that is itself plausible hex/base64 data (long), not a label."""
    return len(t) >= 24 and re.fullmatch(r"[A-Za-z0-9+/_-]+=*", t) is not None and any(c.isdigit() for c in t)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
