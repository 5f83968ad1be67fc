#!/usr/bin/env python3
"""Puts the CPIX 2.3 XML schema (DASH-IF) and its imports where tests/e2e/test_cpix_schema.py
looks for them: target/cpix-xsd/ (or the directory given as the first argument). The test runs
this itself; scripts/setup.sh may run it ahead so the test needs no network.

Where the files come from
-------------------------
No package registry ships the CPIX *2.3* schema. The closest is PyPI's `cpix` 1.4.1 (Unified
Streaming's pycpix, MIT licence), whose wheel carries `cpix/schema/`:

* `cpix.xsd`: DASH-IF's CPIX **2.2** schema (identical to tag `CPIX2.2` of
  github.com/Dash-Industry-Forum/CPIX, XmlSchema/cpix.xsd, plus an optional `CPIX@version`
  attribute that DASH-IF added in 2.3);
* `pskc.xsd` (RFC 6030), `xmldsig-core-schema.xsd` (W3C), `xenc-schema.xsd` (W3C): byte for
  byte the files of every DASH-IF tag from CPIX2.2 to CPIX2.4.

We download that wheel with pip (no other network), check the four files' SHA-256, and derive
`cpix-2.3.xsd` by applying the 2.2 → 2.3 changes of DASH-IF's tag `CPIX2.3` (commit
2849b79eb074fd922a48a86129809291eaee1c86): `KeyPeriodFilter@periodId` becomes `xs:IDREF`, new
`CencSchemeType` and `KeyIdType` (UUID pattern), `ContentKey@kid` typed `KeyIdType`, new
`ContentKey@commonEncryptionScheme`, and a final newline. The result must hash to the SHA-256 of
DASH-IF's own CPIX2.3 `cpix.xsd`, so what the test validates against is exactly the official
2.3 schema, rebuilt rather than redistributed (the DASH-IF repository states no licence).

Idempotent: does nothing when the files are present with the right hashes.
"""
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cpix==1.4.1"

# SHA-256 of the files as the cpix 1.4.1 wheel ships them.
SHIPPED = {
    "cpix.xsd": "23d26448f0007f7dddcd58aa946ef6f68789f803083d26bf4337bc77a533f761",
    "pskc.xsd": "31f5711372db5d6f7063411408fadc4d9d3fb4b3fd20aac2cbbc8281037db237",
    "xmldsig-core-schema.xsd": "35cf8197da812c85e40d57891b35c94187569ed474a2dac813ce5090dafcd35c",
    "xenc-schema.xsd": "43624bca041542df8ce4f4ac143c4828c9ab503bf116522f1812a33f964deda4",
}
# SHA-256 of XmlSchema/cpix.xsd at DASH-IF tag CPIX2.3.
OFFICIAL_2_3 = "4a6963a189b90bbe16e16416dda1798caa7dbc7cbeee74d8cc021ae4242dd1b3"

# The 2.2 → 2.3 changes, as (text in the 2.2 file, replacement); each must match exactly once.
T = "\t"
CHANGES = [
    (f'{T*2}<xs:attribute name="periodId" type="xs:ID" use="required"/>',
     f'{T*2}<xs:attribute name="periodId" type="xs:IDREF" use="required"/>'),
    (f'{T}<xs:complexType name="ContentKeyType">',
     f'{T}<xs:simpleType name="CencSchemeType" final="restriction">\n'
     f'{T*2}<xs:restriction base="xs:string">\n'
     f'{T*3}<xs:length value="4"/>\n'
     f'{T*2}</xs:restriction>\n'
     f'{T}</xs:simpleType>\n'
     f'{T}<xs:simpleType name="KeyIdType">\n'
     f'{T*2}<xs:restriction base="xs:string">\n'
     f'{T*3}<xs:pattern value="[A-Fa-f0-9]{{8}}-[A-Fa-f0-9]{{4}}-[A-Fa-f0-9]{{4}}-[A-Fa-f0-9]{{4}}-[A-Fa-f0-9]{{12}}"/>\n'
     f'{T*2}</xs:restriction>\n'
     f'{T}</xs:simpleType>\n'
     f'{T}<xs:complexType name="ContentKeyType">'),
    (f'{T*4}<xs:attribute name="kid" type="xs:string" use="required"/>\n'
     f'{T*4}<xs:attribute name="explicitIV" type="xs:base64Binary" use="optional"/>\n'
     f'{T*4}<xs:attribute name="dependsOnKey" type="xs:string" use="optional"/>\n',
     f'{T*4}<xs:attribute name="kid" type="cpix:KeyIdType" use="required"/>\n'
     f'{T*4}<xs:attribute name="explicitIV" type="xs:base64Binary" use="optional"/>\n'
     f'{T*4}<xs:attribute name="dependsOnKey" type="xs:string" use="optional"/>\n'
     f'{T*4}<xs:attribute name="commonEncryptionScheme" type="cpix:CencSchemeType" use="optional"/>\n'),
]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def ready(dest):
    files = {**{name: digest for name, digest in SHIPPED.items() if name != "cpix.xsd"},
             "cpix-2.3.xsd": OFFICIAL_2_3, "cpix-2.2.xsd": SHIPPED["cpix.xsd"]}
    return all((dest / n).is_file() and sha256((dest / n).read_bytes()) == d for n, d in files.items())


def derive_2_3(text_2_2):
    text = text_2_2
    for old, new in CHANGES:
        if text.count(old) != 1:
            raise SystemExit(f"fetch-cpix-xsd: the 2.2 schema does not contain exactly one {old.strip()[:60]!r}")
        text = text.replace(old, new)
    if not text.endswith("\n"):
        text += "\n"
    return text


def main():
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "cpix-xsd"
    if ready(dest):
        print(f"fetch-cpix-xsd: {dest} is up to date")
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary=:all:", PACKAGE, "-d", tmp], check=True)
        wheels = list(Path(tmp).glob("cpix-1.4.1-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"fetch-cpix-xsd: expected one cpix 1.4.1 wheel, got {wheels}")
        with zipfile.ZipFile(wheels[0]) as z:
            shipped = {name: z.read(f"cpix/schema/{name}") for name in SHIPPED}
            licence = z.read("cpix-1.4.1.dist-info/LICENSE")
    for name, data in shipped.items():
        if sha256(data) != SHIPPED[name]:
            raise SystemExit(f"fetch-cpix-xsd: {name} in the wheel has SHA-256 {sha256(data)}, "
                             f"expected {SHIPPED[name]}")
    text_2_3 = derive_2_3(shipped["cpix.xsd"].decode("utf-8")).encode("utf-8")
    if sha256(text_2_3) != OFFICIAL_2_3:
        raise SystemExit("fetch-cpix-xsd: the derived 2.3 schema does not match DASH-IF's CPIX2.3 cpix.xsd")
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in shipped.items():
        (dest / ("cpix-2.2.xsd" if name == "cpix.xsd" else name)).write_bytes(data)
    (dest / "cpix-2.3.xsd").write_bytes(text_2_3)
    (dest / "LICENSE.pycpix").write_bytes(licence)
    print(f"fetch-cpix-xsd: wrote {dest}/cpix-2.3.xsd (= DASH-IF CPIX2.3), cpix-2.2.xsd and the imports")


if __name__ == "__main__":
    main()
