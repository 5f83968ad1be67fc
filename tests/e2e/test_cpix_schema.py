"""`drm-origin keys export` writes CPIX 2.3 documents that the official DASH-IF schema accepts.

The schema: DASH-IF's CPIX 2.3 `cpix.xsd` with its imports `pskc.xsd` (RFC 6030),
`xmldsig-core-schema.xsd` and `xenc-schema.xsd` (W3C). No package registry ships the 2.3 file,
and the DASH-IF repository states no licence, so nothing is committed here:
scripts/fetch-cpix-xsd.py (run by the `xsd` fixture below; idempotent) downloads PyPI's
`cpix` 1.4.1 wheel (Unified Streaming's pycpix, MIT), takes its CPIX 2.2 `cpix.xsd` and the three
imports (SHA-256 pinned), applies DASH-IF's 2.2 → 2.3 changes and checks that the result hashes
to the `cpix.xsd` of DASH-IF tag CPIX2.3 (github.com/Dash-Industry-Forum/CPIX, commit 2849b79).
The files land in target/cpix-xsd/ (or $CPIX_XSD_DIR).

Besides `xmllint --schema`, the documents are read back here with ElementTree as a packager
would: keys against the configuration, every DRMSystem's PSSH box, ContentProtectionData
fragment and HLS lines, and the usage rule of every key (spec-notes §9).
"""
import base64
import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ASSETS, BIN, ROOT, tool

XSD_DIR = Path(os.environ.get("CPIX_XSD_DIR", ROOT / "target" / "cpix-xsd"))
CPIX = "{urn:dashif:org:cpix}"
PSKC = "{urn:ietf:params:xml:ns:keyprov:pskc}"
CENC = "{urn:mpeg:cenc:2013}"

CLEARKEY = "e2719d58-a985-b3c9-781a-b030af78d30e"
WIDEVINE = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY = "9a04f079-9840-4286-ab92-e65be0885f95"
FAIRPLAY = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"
COMMON = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

SD_MAX = 768 * 576
HD_MAX = 1920 * 1080
# intendedTrackType → (the filter element, its attributes) our export writes per class.
RULES = {
    "VIDEO": ("VideoFilter", {}),
    "SD": ("VideoFilter", {"maxPixels": str(SD_MAX)}),
    "HD": ("VideoFilter", {"minPixels": str(SD_MAX + 1), "maxPixels": str(HD_MAX)}),
    "UHD": ("VideoFilter", {"minPixels": str(HD_MAX + 1)}),
    "AUDIO": ("AudioFilter", {}),
    "ENVELOPE": ("LabelFilter", {"label": "hls-aes-128"}),
}

KEYS = {  # class → (kid, key); the classes the `multi` asset's tracks use (all video ≤ 576 lines)
    "sd": ("0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d01", "00112233445566778899aabbccddee01"),
    "hd": ("0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d02", "00112233445566778899aabbccddee02"),
    "audio": ("0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d03", "00112233445566778899aabbccddee03"),
    "envelope": ("0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d04", "00112233445566778899aabbccddee04"),
}
POLICY = """
[policies.p]
dash = ["cenc", "cbcs"]
hls = ["cbcs", "aes128"]
key_delivery = "open"
drm_systems = ["clearkey", "widevine", "playready", "fairplay"]
license_urls = {{ playready = "https://pr.example/rightsmanager.asmx?a=1&b=2", widevine = "https://wv.example/lic", clearkey = "https://ck.example/ck", fairplay = "skd://fps.example/{{kid}}" }}
keys = {keys}

[[assets]]
match = "**"
policy = "p"
"""


def named_config():
    tables = "".join(f'[keys.k_{c}]\nkid = "{kid}"\nkey = "{key}"\n' for c, (kid, key) in KEYS.items())
    keys = "{ " + ", ".join(f'{c} = "k_{c}"' for c in KEYS) + " }"
    return tables + POLICY.format(keys=keys)


def auto_config():
    seed = base64.b64encode(bytes(range(32))).decode()
    keys = "{ " + ", ".join(f'{c} = "auto"' for c in ("video", "audio", "envelope")) + " }"
    return f'[keystore]\nseed = "{seed}"\n' + POLICY.format(keys=keys)


@pytest.fixture(scope="module")
def xsd():
    """The schema directory (fetched from PyPI and checked by scripts/fetch-cpix-xsd.py)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch-cpix-xsd.py"), str(XSD_DIR)], check=True)
    return XSD_DIR


def xmllint(schema, doc_path):
    p = subprocess.run([tool("xmllint"), "--noout", "--nonet", "--schema", str(schema), str(doc_path)],
                       capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def export(tmp_path, name, config_text, out=True):
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(config_text)
    args = [str(BIN), "keys", "export", "multi", "--config", str(cfg), "--assets", str(ASSETS)]
    doc = tmp_path / f"{name}.cpix.xml"
    if out:
        args += ["-o", str(doc)]
    p = subprocess.run(args, capture_output=True, timeout=60)
    assert p.returncode == 0, f"keys export failed ({p.returncode}):\n{p.stderr.decode(errors='replace')[-2000:]}"
    if not out:
        doc.write_bytes(p.stdout)
    return doc, p


def b64(text, what, problems):
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except ValueError:
        problems.append(f"{what}: not base64")
        return b""


def pssh_box(data, what, problems):
    """(system id, version, KIDs of a v1 box, Data) of one whole `pssh` box."""
    if len(data) < 32 or struct.unpack_from(">I", data)[0] != len(data) or data[4:8] != b"pssh":
        problems.append(f"{what}: not exactly one pssh box")
        return None
    version = data[8]
    system, pos, kids = data[12:28], 28, []
    if version == 1:
        n = struct.unpack_from(">I", data, pos)[0]
        kids = [data[pos + 4 + 16 * i:pos + 20 + 16 * i] for i in range(n)]
        pos += 4 + 16 * n
    size = struct.unpack_from(">I", data, pos)[0]
    if pos + 4 + size != len(data):
        problems.append(f"{what}: pssh Data size {size} does not fill the box")
    return system, version, kids, data[pos + 4:]


def guid_le(kid):
    return kid[3::-1] + kid[5:3:-1] + kid[7:5:-1] + kid[8:]


def check_document(path, asset, expected_keys=None, served=None):
    """Every problem a packager reading this CPIX document would hit, as a list of strings.
    `served`: {scheme: (over DASH, over HLS)} of the policy (default: POLICY's)."""
    served = served or {"cenc": (True, False), "cbcs": (True, True)}
    problems = []
    root = ET.parse(path).getroot()
    if root.tag != CPIX + "CPIX" or root.get("version") != "2.3" or root.get("contentId") != asset:
        problems.append(f"root: {root.tag} version={root.get('version')} contentId={root.get('contentId')}")
    keys = {}  # kid → (key bytes, commonEncryptionScheme)
    for ck in root.iterfind(f"{CPIX}ContentKeyList/{CPIX}ContentKey"):
        kid = ck.get("kid", "")
        if not UUID_RE.match(kid):
            problems.append(f"ContentKey@kid {kid!r} is not a lower-case UUID")
        value = ck.find(f"{CPIX}Data/{PSKC}Secret/{PSKC}PlainValue")
        key = b64(value.text if value is not None else "", f"ContentKey {kid} PlainValue", problems)
        if len(key) != 16:
            problems.append(f"ContentKey {kid}: key of {len(key)} bytes")
        if kid in keys:
            problems.append(f"ContentKey {kid} twice")
        keys[kid] = (key, ck.get("commonEncryptionScheme"))
    if not keys:
        problems.append("no ContentKey")

    classes = {}
    for rule in root.iterfind(f"{CPIX}ContentKeyUsageRuleList/{CPIX}ContentKeyUsageRule"):
        kid, track = rule.get("kid"), rule.get("intendedTrackType")
        if kid not in keys:
            problems.append(f"usage rule for unknown kid {kid}")
        if kid in classes:
            problems.append(f"two usage rules for kid {kid}")
        classes[kid] = track
        filters = [(f.tag.removeprefix(CPIX), dict(f.attrib)) for f in rule]
        if track not in RULES or filters != [RULES[track]]:
            problems.append(f"usage rule {kid}: intendedTrackType={track} filters={filters}")
    for kid, (_, scheme) in keys.items():
        if kid not in classes:
            problems.append(f"ContentKey {kid} has no usage rule")
        # One scheme served: it is named; both: left out (CPIX: any), the key protects both.
        want = None if classes.get(kid) == "ENVELOPE" or len(served) > 1 else next(iter(served))
        if scheme != want:
            problems.append(f"ContentKey {kid} ({classes.get(kid)}): commonEncryptionScheme={scheme}, want {want}")

    if expected_keys is not None:
        for cls, (kid, key) in expected_keys.items():
            if kid in keys and keys[kid][0].hex() != key:
                problems.append(f"ContentKey {kid}: value differs from the config's {cls} key")
            if kid in keys and classes.get(kid) != cls.upper():
                problems.append(f"ContentKey {kid}: class {classes.get(kid)}, config says {cls}")
        unknown = set(keys) - {kid for kid, _ in expected_keys.values()}
        if unknown:
            problems.append(f"keys not in the config: {sorted(unknown)}")
        for cls in ("sd", "audio"):
            if expected_keys[cls][0] not in keys:
                problems.append(f"the {cls} key, which the asset's tracks use, is missing")

    seen = set()
    for ds in root.iterfind(f"{CPIX}DRMSystemList/{CPIX}DRMSystem"):
        kid, system = ds.get("kid"), ds.get("systemId")
        what = f"DRMSystem {system} kid {kid} {ds.get('name') or ''}".strip()
        if kid not in keys:
            problems.append(f"{what}: no such ContentKey")
            continue
        if classes.get(kid) == "ENVELOPE":
            problems.append(f"{what}: DRM signalling for the HLS AES-128 key")
        # Which scheme this DRMSystem signals: the key's, or (several served) its name's.
        ds_scheme = keys[kid][1] or (ds.get("name") or "").rpartition(" ")[2]
        if ds_scheme not in served:
            problems.append(f"{what}: signals scheme {ds_scheme!r}, the policy serves {sorted(served)}")
            continue
        over_dash, over_hls = served[ds_scheme]
        if (kid, system, ds_scheme) in seen:
            problems.append(f"{what}: twice")
        seen.add((kid, system, ds_scheme))
        kid_bytes = bytes.fromhex(kid.replace("-", ""))
        pssh_el = ds.find(f"{CPIX}PSSH")
        if system in (CLEARKEY, WIDEVINE, PLAYREADY):
            box = pssh_box(b64(pssh_el.text if pssh_el is not None else "", f"{what} PSSH", problems), what, problems)
            if box:
                sys_id, version, kids, data = box
                if system == CLEARKEY and (sys_id != COMMON or kids != [kid_bytes]):
                    problems.append(f"{what}: PSSH is not the W3C common box for the KID")
                if system == WIDEVINE and (sys_id.hex() != WIDEVINE.replace("-", "") or kid_bytes not in data):
                    problems.append(f"{what}: Widevine PSSH without the KID")
                if system == PLAYREADY:
                    header = data[10:].decode("utf-16-le", errors="replace")
                    want = base64.b64encode(guid_le(kid_bytes)).decode()
                    if sys_id.hex() != PLAYREADY.replace("-", "") or want not in header or "<LA_URL>" not in header:
                        problems.append(f"{what}: PlayReady header without the GUID-LE KID or LA_URL: {header[:200]}")
            cpd = ds.find(f"{CPIX}ContentProtectionData")
            if not over_dash:
                if cpd is not None:
                    problems.append(f"{what}: ContentProtectionData for a scheme not served over DASH")
                cpd = None
            fragment = b64(cpd.text if cpd is not None else "", f"{what} ContentProtectionData", problems).decode() \
                if over_dash else "<x/>"
            try:
                cp = ET.fromstring(f'<ContentProtection xmlns="urn:mpeg:dash:schema:mpd:2011">{fragment}</ContentProtection>')
                if over_dash and pssh_el is not None and [p.text for p in cp.iter(CENC + "pssh")] != [pssh_el.text]:
                    problems.append(f"{what}: ContentProtectionData's cenc:pssh differs from PSSH")
            except ET.ParseError as e:
                problems.append(f"{what}: ContentProtectionData is not a standalone XML fragment ({e}): {fragment[:200]}")
        elif system == FAIRPLAY:
            if pssh_el is not None or ds_scheme != "cbcs" or not over_hls:
                problems.append(f"{what}: FairPlay with a PSSH, or not for cbcs over HLS")
        else:
            problems.append(f"{what}: unexpected system")
        playlists = {}
        for h in ds.iterfind(f"{CPIX}HLSSignalingData"):
            playlists[h.get("playlist")] = b64(h.text, f"{what} HLSSignalingData", problems).decode()
        want_tag = {"media": "#EXT-X-KEY:", "master": "#EXT-X-SESSION-KEY:"} if over_hls else {}
        if set(playlists) != set(want_tag):
            problems.append(f"{what}: HLSSignalingData for {sorted(playlists, key=str)}")
        for pl, line in playlists.items():
            if pl in want_tag and (not line.startswith(want_tag[pl]) or "\n" in line.strip() or "METHOD=SAMPLE-AES" not in line):
                problems.append(f"{what}: {pl} playlist line {line[:120]!r}")
    # Every key, every system the policy names, under every scheme it applies to.
    systems = {"clearkey": CLEARKEY, "widevine": WIDEVINE, "playready": PLAYREADY, "fairplay": FAIRPLAY}
    for kid in keys:
        if classes.get(kid) == "ENVELOPE":
            continue
        for scheme, (_, over_hls) in served.items():
            for name, sid in systems.items():
                applies = name != "fairplay" or (scheme == "cbcs" and over_hls)
                if applies and (kid, sid, scheme) not in seen:
                    problems.append(f"ContentKey {kid}: no {name} DRMSystem for {scheme}")
    return problems


@pytest.mark.parametrize("name", ["named", "auto"])
def test_export_validates_against_the_cpix_2_3_schema(tmp_path, xsd, name):
    text = named_config() if name == "named" else auto_config()
    doc, p = export(tmp_path, name, text)
    rc, out = xmllint(xsd / "cpix-2.3.xsd", doc)
    assert rc == 0 and out.endswith("validates"), f"xmllint (CPIX 2.3 XSD):\n{out}\n\n{doc.read_text()[:3000]}"
    problems = check_document(doc, "multi", KEYS if name == "named" else None)
    assert not problems, "\n".join(problems)
    # The document carries the keys in the clear; with -o nothing else may show them.
    values = [v.text.strip() for v in ET.parse(doc).getroot().iter(PSKC + "PlainValue")]
    shown = (p.stdout + p.stderr).decode(errors="replace")
    leaked = [v for v in values if v in shown or base64.b64decode(v).hex() in shown]
    assert not leaked, f"keys export -o printed {len(leaked)} key value(s) on stdout/stderr"
    # Without -o the document goes to stdout, byte for byte the same.
    again, _ = export(tmp_path, name + "-stdout", text, out=False)
    assert again.read_bytes() == doc.read_bytes(), "stdout export differs from the -o export"


@pytest.mark.parametrize("dash", [["cenc", "cbcs"], ["cbcs", "cenc"], ["cenc"]])
def test_export_carries_every_scheme_the_policy_serves(tmp_path, xsd, dash):
    """Issue 13.2: with dash = ["cenc","cbcs"] and hls = ["cbcs"], the export used to keep the
    first scheme only (no FairPlay, cenc only). Every scheme served must be there, each with the
    systems that apply (FairPlay: cbcs over HLS), whatever the order of the lists."""
    text = named_config().replace('dash = ["cenc", "cbcs"]', f"dash = {dash!r}".replace("'", '"')) \
        .replace('hls = ["cbcs", "aes128"]', 'hls = ["cbcs"]').replace(", envelope = \"k_envelope\"", "")
    doc, _ = export(tmp_path, "schemes-" + "-".join(dash), text)
    rc, out = xmllint(xsd / "cpix-2.3.xsd", doc)
    assert rc == 0 and out.endswith("validates"), out
    served = {s: (s in dash, s == "cbcs") for s in ("cenc", "cbcs") if s in dash or s == "cbcs"}
    keys = {c: v for c, v in KEYS.items() if c != "envelope"}
    problems = check_document(doc, "multi", keys, served)
    assert not problems, "\n".join(problems) + "\n" + doc.read_text()[:3000]
    root = ET.parse(doc).getroot()
    fairplay = [d for d in root.iter(CPIX + "DRMSystem") if d.get("systemId") == FAIRPLAY]
    exported = list(root.iter(CPIX + "ContentKey"))
    assert len(exported) == 2 and len(fairplay) == 2, f"{len(fairplay)} FairPlay DRMSystems for {len(exported)} keys"


def test_the_schema_bites(tmp_path, xsd):
    """The validator is not a rubber stamp: CPIX 2.2 (pycpix's schema as shipped) refuses the
    2.3 attribute `commonEncryptionScheme`, and the 2.3 schema refuses a KID that is no UUID."""
    # One scheme served: every key names it (with both, the attribute is left out: any scheme).
    doc, _ = export(tmp_path, "named", named_config().replace('dash = ["cenc", "cbcs"]', 'dash = ["cbcs"]'))
    rc, out = xmllint(xsd / "cpix-2.2.xsd", doc)
    assert rc != 0 and "commonEncryptionScheme" in out, out
    broken = tmp_path / "broken.xml"
    broken.write_text(re.sub(r'(<cpix:ContentKey kid=")[0-9a-f-]{36}', r"\1not-a-uuid", doc.read_text(), count=1))
    rc, out = xmllint(xsd / "cpix-2.3.xsd", broken)
    assert rc != 0 and "kid" in out, out
