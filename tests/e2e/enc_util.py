"""Helpers for the encryption end-to-end tests (test_encryption.py).

* An independent ISO-BMFF box walker (no code shared with the server): init segments
  (stsd/encv|enca/sinf/frma/schm/schi/tenc, pssh) and media segments (moof/traf/tfhd/trun/
  saiz/saio/senc, mdat), with structure checks that return every problem found as text.
* Decryption by tools nobody here wrote: Shaka Packager (raw keys) and the static ffmpeg 8.1
  (`-decryption_key`), plus `openssl enc -d -aes-128-cbc` for HLS AES-128 segments.
* framemd5 with ffmpeg 8.1 on both sides (Debian's 5.1 and 8.1 decode AAC to different PCM).

Byte layouts follow ISO/IEC 14496-12 and ISO/IEC 23001-7 as summarised in
/work/shared/spec-notes.md §1 (box fields) and §8 (AES-128).
"""
import hashlib
import struct
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import media_util as mu
from conftest import tool

COMMON_SYSTEM_ID = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")

# ------------------------------------------------------------------------------------------------
# Box walker


class BoxError(Exception):
    pass


CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"sinf",
              b"schi", b"edts", b"dinf", b"mfra", b"udta"}
VISUAL_ENTRIES = {b"encv", b"avc1", b"avc3", b"hvc1", b"hev1"}
AUDIO_ENTRIES = {b"enca", b"mp4a", b"ac-3", b"ec-3"}


@dataclass
class Box:
    type: bytes
    start: int          # absolute offset of the box in `buf`
    size: int
    hsize: int          # 8 or 16
    buf: bytes = field(repr=False)
    children: list = field(default_factory=list, repr=False)

    @property
    def end(self):
        return self.start + self.size

    @property
    def body_start(self):
        return self.start + self.hsize

    @property
    def body(self):
        return self.buf[self.body_start:self.end]

    def all(self, t):
        t = t.encode() if isinstance(t, str) else t
        return [c for c in self.children if c.type == t]

    def first(self, t):
        found = self.all(t)
        return found[0] if found else None

    def path(self, *types):
        """The first box reached through the given child types, or None."""
        b = self
        for t in types:
            b = b.first(t)
            if b is None:
                return None
        return b

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def __str__(self):
        return f"'{self.type.decode(errors='replace')}'@{self.start}+{self.size}"


def parse_boxes(buf, start=0, end=None):
    """Boxes in buf[start:end] (recursing into known containers and sample entries)."""
    end = len(buf) if end is None else end
    out = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise BoxError(f"{end - pos} trailing byte(s) at {pos} (not a box header)")
        size, typ = struct.unpack_from(">I4s", buf, pos)
        hsize = 8
        if size == 1:
            if end - pos < 16:
                raise BoxError(f"box '{typ!r}' at {pos}: truncated largesize")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            hsize = 16
        elif size == 0:
            size = end - pos
        if size < hsize or pos + size > end:
            raise BoxError(f"box {typ!r} at {pos}: size {size} runs past its parent (ends {end})")
        b = Box(typ, pos, size, hsize, buf)
        if typ in CONTAINERS:
            b.children = parse_boxes(buf, b.body_start, b.end)
        elif typ == b"stsd":
            b.children = parse_boxes(buf, b.body_start + 8, b.end)
        elif typ in VISUAL_ENTRIES:
            b.children = parse_boxes(buf, b.body_start + 78, b.end)
        elif typ in AUDIO_ENTRIES:
            sound_version = struct.unpack_from(">H", buf, b.body_start + 8)[0]
            extra = {0: 0, 1: 16, 2: 36}.get(sound_version, 0)
            b.children = parse_boxes(buf, b.body_start + 28 + extra, b.end)
        out.append(b)
        pos += size
    return out


def full_header(box):
    vf = struct.unpack_from(">I", box.buf, box.body_start)[0]
    return vf >> 24, vf & 0xFFFFFF


# ------------------------------------------------------------------------------------------------
# Field parsers


def parse_tenc(box):
    version, _ = full_header(box)
    b = box.body[4:]
    t = {"version": version, "reserved0": b[0], "byte1": b[1], "crypt": b[1] >> 4, "skip": b[1] & 0xF,
         "is_protected": b[2], "iv_size": b[3], "kid": bytes(b[4:20]), "const_iv": None,
         "const_iv_size": None, "size": box.size}
    if t["is_protected"] == 1 and t["iv_size"] == 0:
        t["const_iv_size"] = b[20]
        t["const_iv"] = bytes(b[21:21 + b[20]])
    return t


def parse_schm(box):
    version, flags = full_header(box)
    b = box.body[4:]
    return {"version": version, "flags": flags, "scheme_type": bytes(b[0:4]),
            "scheme_version": struct.unpack_from(">I", b, 4)[0]}


def parse_pssh(box):
    version, flags = full_header(box)
    b = box.body[4:]
    system_id = bytes(b[0:16])
    pos = 16
    kids = []
    if version > 0:
        n = struct.unpack_from(">I", b, pos)[0]
        pos += 4
        kids = [bytes(b[pos + 16 * i:pos + 16 * (i + 1)]) for i in range(n)]
        pos += 16 * n
    data_size = struct.unpack_from(">I", b, pos)[0]
    data = bytes(b[pos + 4:pos + 4 + data_size])
    return {"version": version, "flags": flags, "system_id": system_id, "kids": kids,
            "data_size": data_size, "data": data, "exact": pos + 4 + data_size == len(b)}


def parse_tfhd(box):
    _, flags = full_header(box)
    b = box.body
    pos = 4
    t = {"flags": flags, "track_id": struct.unpack_from(">I", b, pos)[0], "base_data_offset": None,
         "sdi": None, "default_duration": None, "default_size": None, "default_flags": None}
    pos += 4
    if flags & 0x1:
        t["base_data_offset"] = struct.unpack_from(">Q", b, pos)[0]
        pos += 8
    for bit, name in ((0x2, "sdi"), (0x8, "default_duration"), (0x10, "default_size"),
                      (0x20, "default_flags")):
        if flags & bit:
            t[name] = struct.unpack_from(">I", b, pos)[0]
            pos += 4
    return t


def parse_trun(box, tfhd):
    version, flags = full_header(box)
    b = box.body
    count = struct.unpack_from(">I", b, 4)[0]
    pos = 8
    t = {"version": version, "flags": flags, "count": count, "data_offset": None, "samples": []}
    if flags & 0x1:
        t["data_offset"] = struct.unpack_from(">i", b, pos)[0]
        pos += 4
    if flags & 0x4:
        pos += 4
    for _ in range(count):
        s = {"duration": tfhd["default_duration"], "size": tfhd["default_size"], "cts": 0}
        if flags & 0x100:
            s["duration"] = struct.unpack_from(">I", b, pos)[0]
            pos += 4
        if flags & 0x200:
            s["size"] = struct.unpack_from(">I", b, pos)[0]
            pos += 4
        if flags & 0x400:
            pos += 4
        if flags & 0x800:
            s["cts"] = struct.unpack_from(">i" if version else ">I", b, pos)[0]
            pos += 4
        t["samples"].append(s)
    if pos != len(b):
        t["trailing"] = len(b) - pos
    return t


def parse_saiz(box):
    _, flags = full_header(box)
    b = box.body
    pos = 4
    if flags & 1:
        pos += 8
    default = b[pos]
    count = struct.unpack_from(">I", b, pos + 1)[0]
    sizes = list(b[pos + 5:pos + 5 + count]) if default == 0 else [default] * count
    return {"flags": flags, "default": default, "count": count, "sizes": sizes}


def parse_saio(box):
    version, flags = full_header(box)
    b = box.body
    pos = 4
    if flags & 1:
        pos += 8
    n = struct.unpack_from(">I", b, pos)[0]
    pos += 4
    fmt, w = (">Q", 8) if version else (">I", 4)
    offsets = [struct.unpack_from(fmt, b, pos + w * i)[0] for i in range(n)]
    return {"version": version, "flags": flags, "entry_count": n, "offsets": offsets}


def parse_senc(box, iv_size):
    """Records [(iv bytes, [(clear, protected), ...] or None)], plus where they start (absolute)."""
    version, flags = full_header(box)
    b = box.body
    count = struct.unpack_from(">I", b, 4)[0]
    pos = 8
    records, sizes = [], []
    for i in range(count):
        start = pos
        iv = bytes(b[pos:pos + iv_size])
        pos += iv_size
        subs = None
        if flags & 2:
            n = struct.unpack_from(">H", b, pos)[0]
            pos += 2
            subs = [struct.unpack_from(">HI", b, pos + 6 * j) for j in range(n)]
            pos += 6 * n
        if pos > len(b):
            raise BoxError(f"senc record {i} runs past the box (IV size {iv_size}, flags {flags:#x})")
        records.append((iv, subs))
        sizes.append(pos - start)
    return {"version": version, "flags": flags, "count": count, "records": records,
            "record_sizes": sizes, "records_start": box.body_start + 8,
            "trailing": len(b) - pos}


# ------------------------------------------------------------------------------------------------
# Init segments


@dataclass
class Entry:
    fourcc: bytes
    box: Box
    sinf: dict = None          # {'frma','schm','tenc','is_last_child'}


@dataclass
class InitInfo:
    track_id: int
    handler: bytes
    entries: list
    psshs: list
    nal_length_size: int = None
    top: list = field(default_factory=list, repr=False)
    declared_entries: int = None    # stsd entry_count as written

    @property
    def tenc(self):
        e = self.entries[0] if self.entries else None
        return e.sinf["tenc"] if e is not None and e.sinf and e.sinf.get("tenc") else None

    @property
    def kid(self):
        return self.tenc["kid"] if self.tenc else None


def parse_init(data):
    top = parse_boxes(data)
    moov = next((b for b in top if b.type == b"moov"), None)
    if moov is None:
        raise BoxError(f"init segment without moov: top-level {[str(b) for b in top]}")
    traks = moov.all("trak")
    if len(traks) != 1:
        raise BoxError(f"init segment has {len(traks)} trak boxes, expected 1")
    trak = traks[0]
    tkhd = trak.first("tkhd")
    v, _ = full_header(tkhd)
    track_id = struct.unpack_from(">I", data, tkhd.body_start + (20 if v == 1 else 12))[0]
    hdlr = trak.path("mdia", "hdlr")
    handler = bytes(data[hdlr.body_start + 8:hdlr.body_start + 12])
    stsd = trak.path("mdia", "minf", "stbl", "stsd")
    declared = struct.unpack_from(">I", data, stsd.body_start + 4)[0]
    entries = []
    nal_len = None
    for eb in stsd.children:
        e = Entry(eb.type, eb)
        sinf = eb.first("sinf")
        if sinf is not None:
            info = {"is_last_child": eb.children[-1] is sinf, "frma": None, "schm": None, "tenc": None}
            frma = sinf.first("frma")
            if frma is not None:
                info["frma"] = bytes(frma.body[:4])
            schm = sinf.first("schm")
            if schm is not None:
                info["schm"] = parse_schm(schm)
            tenc = sinf.path("schi", "tenc")
            if tenc is not None:
                info["tenc"] = parse_tenc(tenc)
            e.sinf = info
        for cfg, off in ((b"avcC", 4), (b"hvcC", 21)):
            c = eb.first(cfg)
            if c is not None and nal_len is None:
                nal_len = (c.body[off] & 0x3) + 1
        entries.append(e)
    psshs = [parse_pssh(b) for b in moov.all("pssh")]
    return InitInfo(track_id, handler, entries, psshs, nal_len, top, declared)


def check_init(init, scheme, kind, kid, original, clear_lead=False):
    """Problems (list of str) of a protected init segment against ISO/IEC 23001-7 as the contract
    specifies it: encv/enca + sinf(frma, schm v0x10000, tenc) and a W3C common pssh (v1) naming
    the KID. `original` is the clear sample entry 4cc (avc1/hvc1/mp4a)."""
    p = []
    want_handler = b"vide" if kind == "video" else b"soun"
    if init.handler != want_handler:
        p.append(f"hdlr handler_type {init.handler!r}, expected {want_handler!r}")
    want_entries = 2 if clear_lead else 1
    if init.declared_entries != len(init.entries):
        p.append(f"stsd entry_count {init.declared_entries} but {len(init.entries)} sample "
                 f"entries present {[e.fourcc for e in init.entries]}")
    if len(init.entries) != want_entries:
        p.append(f"stsd has {len(init.entries)} sample entries {[e.fourcc for e in init.entries]}, "
                 f"expected {want_entries}")
    if not init.entries:
        return p
    e = init.entries[0]
    want_4cc = b"encv" if kind == "video" else b"enca"
    if e.fourcc != want_4cc:
        p.append(f"sample entry 1 is {e.fourcc!r}, expected {want_4cc!r}")
    if e.sinf is None:
        return p + ["sample entry 1 has no sinf"]
    s = e.sinf
    if not s["is_last_child"]:
        p.append(f"sinf is not the last child of {e.fourcc!r} (children {[c.type for c in e.box.children]})")
    if s["frma"] != original:
        p.append(f"frma data_format {s['frma']!r}, expected {original!r}")
    schm = s["schm"]
    if schm is None:
        p.append("sinf without schm")
    else:
        if schm["scheme_type"] != scheme.encode():
            p.append(f"schm scheme_type {schm['scheme_type']!r}, expected {scheme!r}")
        if schm["scheme_version"] != 0x10000:
            p.append(f"schm scheme_version {schm['scheme_version']:#x}, expected 0x10000")
        if schm["version"] != 0 or schm["flags"] != 0:
            p.append(f"schm version/flags {schm['version']}/{schm['flags']:#x}, expected 0/0")
    t = s["tenc"]
    if t is None:
        return p + ["sinf/schi without tenc"]
    if t["kid"] != kid:
        p.append(f"tenc default_KID {t['kid'].hex()}, expected {kid.hex()}")
    if t["is_protected"] != 1:
        p.append(f"tenc default_isProtected {t['is_protected']}, expected 1")
    if scheme == "cenc":
        want = {"version": 0, "byte1": 0, "iv_size": 8, "size": 32}
    else:
        crypt, skip = (1, 9) if kind == "video" else (0, 0)
        want = {"version": 1, "crypt": crypt, "skip": skip, "iv_size": 0, "const_iv_size": 16,
                "size": 49}
    for k, v in want.items():
        if t[k] != v:
            p.append(f"tenc {k} = {t[k]}, expected {v} ({scheme} {kind})")
    if scheme == "cbcs" and t["const_iv"] is not None and len(t["const_iv"]) != 16:
        p.append(f"tenc constant IV has {len(t['const_iv'])} bytes")
    if clear_lead and len(init.entries) > 1:
        e2 = init.entries[1]
        if e2.fourcc != original:
            p.append(f"clear-lead sample entry 2 is {e2.fourcc!r}, expected the clear {original!r}")
        if e2.sinf is not None:
            p.append("clear-lead sample entry 2 carries a sinf")
    common = [x for x in init.psshs if x["system_id"] == COMMON_SYSTEM_ID]
    if not common:
        p.append(f"no pssh with the W3C common system id; pssh system ids: "
                 f"{[x['system_id'].hex() for x in init.psshs]}")
    for x in common:
        if x["version"] != 1:
            p.append(f"common pssh version {x['version']}, expected 1")
        if kid not in x["kids"]:
            p.append(f"common pssh KIDs {[k.hex() for k in x['kids']]} do not list {kid.hex()}")
        if x["data_size"] != 0:
            p.append(f"common pssh DataSize {x['data_size']}, expected 0")
    for x in init.psshs:
        if not x["exact"]:
            p.append(f"pssh {x['system_id'].hex()}: DataSize does not end the box")
    return p


# ------------------------------------------------------------------------------------------------
# Media segments


@dataclass
class Fragment:
    moof: Box
    tfhd: dict
    trun: dict
    tfdt: int
    saiz: dict
    saio: dict
    senc: dict
    mdat: Box
    samples: list          # bytes of each sample (as stored, i.e. encrypted)
    traf_children: list


def parse_segment(data, iv_size):
    """One media segment (styp? moof mdat) → [Fragment]."""
    top = parse_boxes(data)
    frags = []
    for i, b in enumerate(top):
        if b.type != b"moof":
            continue
        mdat = next((x for x in top[i + 1:] if x.type in (b"mdat", b"moof")), None)
        if mdat is None or mdat.type != b"mdat":
            raise BoxError(f"moof at {b.start} not followed by an mdat")
        trafs = b.all("traf")
        if len(trafs) != 1:
            raise BoxError(f"moof at {b.start} has {len(trafs)} traf boxes, expected 1")
        traf = trafs[0]
        tfhd = parse_tfhd(traf.first("tfhd"))
        truns = traf.all("trun")
        if len(truns) != 1:
            raise BoxError(f"traf at {traf.start} has {len(truns)} trun boxes, expected 1")
        trun = parse_trun(truns[0], tfhd)
        tfdt_b = traf.first("tfdt")
        tfdt = None
        if tfdt_b is not None:
            v, _ = full_header(tfdt_b)
            tfdt = struct.unpack_from(">Q" if v else ">I", data, tfdt_b.body_start + 4)[0]
        saiz = parse_saiz(traf.first("saiz")) if traf.first("saiz") is not None else None
        saio = parse_saio(traf.first("saio")) if traf.first("saio") is not None else None
        senc = parse_senc(traf.first("senc"), iv_size) if traf.first("senc") is not None else None
        base = b.start if tfhd["base_data_offset"] is None else tfhd["base_data_offset"]
        pos = base + (trun["data_offset"] or 0)
        samples = []
        for s in trun["samples"]:
            samples.append(bytes(data[pos:pos + (s["size"] or 0)]))
            pos += s["size"] or 0
        frags.append(Fragment(b, tfhd, trun, tfdt, saiz, saio, senc, mdat, samples,
                              [c.type for c in traf.children]))
    if not frags:
        raise BoxError(f"segment without moof: top-level {[str(x) for x in top]}")
    return frags


def nal_units(sample, length_size):
    """[(start, total length incl. prefix, nal header byte 0)] of a length-prefixed sample; the
    length fields and NAL headers are clear in every CENC scheme, so this works encrypted too."""
    out = []
    pos = 0
    while pos < len(sample):
        if pos + length_size > len(sample):
            raise BoxError(f"NAL length field at {pos} runs past the sample ({len(sample)} bytes)")
        n = int.from_bytes(sample[pos:pos + length_size], "big")
        end = pos + length_size + n
        if n == 0 or end > len(sample):
            raise BoxError(f"NAL at {pos}: length {n} does not fit the sample ({len(sample)} bytes)")
        out.append((pos, length_size + n, sample[pos + length_size]))
        pos = end
    return out


def is_vcl(header_byte, codec):
    if codec == "hevc":
        return ((header_byte >> 1) & 0x3F) < 32
    return (header_byte & 0x1F) in (1, 2, 3, 4, 5)


def check_fragment(frag, init, scheme, kind, codec, where, clear=False):
    """Problems of one fragment of a protected track: senc/saiz/saio/trun/mdat consistency and
    (video) subsample maps against the NAL structure."""
    p = []
    t, tr = frag.tfhd, frag.trun
    if t["track_id"] != init.track_id:
        p.append(f"{where}: tfhd track_ID {t['track_id']}, init has {init.track_id}")
    if not t["flags"] & 0x20000 or t["base_data_offset"] is not None:
        p.append(f"{where}: tfhd flags {t['flags']:#x}: expected default-base-is-moof without base_data_offset")
    sizes = [s["size"] for s in tr["samples"]]
    if None in sizes:
        p.append(f"{where}: trun/tfhd give no sample sizes")
        return p
    if tr["data_offset"] is None:
        p.append(f"{where}: trun without data_offset")
    else:
        first = frag.moof.start + tr["data_offset"]
        if first != frag.mdat.body_start:
            p.append(f"{where}: trun data_offset {tr['data_offset']} points at byte {first}, "
                     f"mdat payload starts at {frag.mdat.body_start} (moof at {frag.moof.start}, size {frag.moof.size})")
    if sum(sizes) != frag.mdat.size - frag.mdat.hsize:
        p.append(f"{where}: trun sample sizes sum to {sum(sizes)}, mdat payload is {frag.mdat.size - frag.mdat.hsize}")
    if tr.get("trailing"):
        p.append(f"{where}: trun has {tr['trailing']} unparsed trailing bytes")
    if clear:
        if t["sdi"] != 2:
            p.append(f"{where}: clear-lead fragment: tfhd sample_description_index {t['sdi']}, expected 2")
        for name in ("senc", "saiz", "saio"):
            if getattr(frag, name) is not None:
                p.append(f"{where}: clear-lead fragment carries {name}")
        return p
    if t["sdi"] not in (None, 1):
        p.append(f"{where}: encrypted fragment: tfhd sample_description_index {t['sdi']}, expected 1 "
                 f"(the encv/enca entry)")
    senc = frag.senc
    if senc is None:
        return p + [f"{where}: no senc in traf (children {frag.traf_children})"]
    if senc["count"] != tr["count"]:
        p.append(f"{where}: senc sample_count {senc['count']} != trun sample_count {tr['count']}")
    if senc["trailing"]:
        p.append(f"{where}: senc has {senc['trailing']} bytes after the last record")
    if senc["version"] != 0 or senc["flags"] & ~0x2:
        p.append(f"{where}: senc version/flags {senc['version']}/{senc['flags']:#x}")
    if kind == "video" and not senc["flags"] & 2:
        p.append(f"{where}: video senc without subsample information (flags {senc['flags']:#x})")
    # saiz / saio
    aux_sizes = senc["record_sizes"]
    if any(aux_sizes):
        if frag.saiz is None or frag.saio is None:
            p.append(f"{where}: per-sample aux info present but saiz/saio missing ({frag.traf_children})")
    if frag.saiz is not None:
        z = frag.saiz
        if z["count"] != senc["count"]:
            p.append(f"{where}: saiz sample_count {z['count']} != senc sample_count {senc['count']}")
        bad = [(i, a, b) for i, (a, b) in enumerate(zip(z["sizes"], aux_sizes)) if a != b]
        if bad:
            p.append(f"{where}: saiz sizes differ from the senc records (sample, saiz, senc): {bad[:5]}")
    if frag.saio is not None:
        o = frag.saio
        want = senc["records_start"] - frag.moof.start
        if o["entry_count"] != 1:
            p.append(f"{where}: saio entry_count {o['entry_count']}, expected 1")
        elif o["offsets"][0] != want:
            p.append(f"{where}: saio offset {o['offsets'][0]}, first senc record is at moof+{want}")
    # records vs samples
    iv_size = init.tenc["iv_size"] if init.tenc else 0
    for i, ((iv, subs), sample) in enumerate(zip(senc["records"], frag.samples)):
        if len(iv) != iv_size:
            p.append(f"{where}: sample {i}: IV of {len(iv)} bytes, tenc says {iv_size}")
        if subs is None:
            continue
        total = sum(c + q for c, q in subs)
        if total != len(sample):
            p.append(f"{where}: sample {i}: subsamples {subs[:6]}{'...' if len(subs) > 6 else ''} "
                     f"sum to {total}, sample has {len(sample)} bytes")
            continue
        if scheme == "cenc":
            unaligned = [(j, q) for j, (c, q) in enumerate(subs) if q % 16]
            if unaligned:
                p.append(f"{where}: sample {i}: cenc protected sizes not multiples of 16 (subsample, size): {unaligned[:4]}")
        if kind == "video" and init.nal_length_size:
            p += check_nal_map(sample, subs, init.nal_length_size, codec, f"{where}: sample {i}")
    return p


def protected_ranges(subs):
    """[(start, end)] of the protected byte ranges of a sample."""
    out, pos = [], 0
    for c, q in subs:
        pos += c
        if q:
            out.append((pos, pos + q))
        pos += q
    return out


def shift_to_nal_end(sample, ranges, length_size):
    """Protected ranges moved to end at the end of their NAL (cenc: residual as leading clear)."""
    nals = nal_units(sample, length_size)
    out = []
    for a, b in ranges:
        owner = [s + n for s, n, _ in nals if s <= a and b <= s + n]
        end = owner[0] if owner else b
        out.append((a + end - b, end))
    return out


def check_nal_map(sample, subs, length_size, codec, where):
    """Every NAL length field and NAL header is clear, non-VCL NALs are entirely clear, and each
    protected range lies inside one VCL NAL and ends exactly at its end (the residual of cenc's
    16-byte rounding goes into the leading clear bytes; cbcs protects the rest of the NAL)."""
    p = []
    try:
        nals = nal_units(sample, length_size)
    except BoxError as e:
        return [f"{where}: {e}"]
    hdr = 2 if codec == "hevc" else 1
    ranges = protected_ranges(subs)
    for a, b in ranges:
        owner = [(s, n, h) for s, n, h in nals if s <= a and b <= s + n]
        if not owner:
            p.append(f"{where}: protected range [{a},{b}) crosses a NAL boundary (NALs {[(s, n) for s, n, _ in nals]})")
            continue
        s, n, h = owner[0]
        if not is_vcl(h, codec):
            p.append(f"{where}: protected range [{a},{b}) inside non-VCL NAL (header {h:#04x}) at {s}")
        if a < s + length_size + hdr:
            p.append(f"{where}: protected range [{a},{b}) covers the NAL length/header of the NAL at {s}")
        if b != s + n:
            p.append(f"{where}: protected range [{a},{b}) ends before its NAL's end {s + n}")
    return p


# ------------------------------------------------------------------------------------------------
# Whole renditions


@dataclass
class Download:
    """One rendition fetched through a manifest: init + media segments, and their concatenation."""
    init_url: str
    segment_urls: list
    init: bytes
    segments: list
    path: Path

    @property
    def digest(self):
        h = hashlib.sha256(self.init)
        for s in self.segments:
            h.update(s)
        return h.hexdigest()


def download(init_url, segment_urls, kind, dest):
    ctypes = ("audio/mp4",) if kind == "audio" else ("video/mp4",)
    init = mu.fetch_ok(init_url, ctypes)
    segs = [mu.fetch_ok(u, ctypes) for u in segment_urls]
    Path(dest).write_bytes(init + b"".join(segs))
    return Download(init_url, list(segment_urls), init, segs, Path(dest))


def sample_records(dl, init):
    """All (sample bytes, senc record or None, fragment index) of a downloaded rendition."""
    iv_size = init.tenc["iv_size"] if init.tenc else 0
    out = []
    for n, seg in enumerate(dl.segments, 1):
        for f in parse_segment(seg, iv_size):
            recs = f.senc["records"] if f.senc else [None] * len(f.samples)
            for s, r in zip(f.samples, recs):
                out.append((s, r, n))
    return out


def encrypted_bytes(sample, record, scheme):
    """How many bytes of a sample the scheme actually changes (0: the sample is stored clear)."""
    if record is None:
        return 0
    subs = record[1]
    if not subs:
        subs = [(0, len(sample))]
    if scheme == "cenc":
        return sum(q for _, q in subs)
    return sum(q // 16 * 16 for _, q in subs if q >= 16)


def with_track_id_1(data):
    """Copy of a single-track fragmented MP4 with track_ID 1 (tkhd, trex, tfhd). Shaka Packager
    v3.8 crashes (SIGSEGV) on a single-track fragmented input whose track_ID is not 1; the
    renumbering touches no sample data and no encryption box."""
    buf = bytearray(data)
    for top in parse_boxes(data):
        for b in top.walk():
            if b.type == b"tkhd":
                v, _ = full_header(b)
                struct.pack_into(">I", buf, b.body_start + (20 if v == 1 else 12), 1)
            elif b.type in (b"trex", b"tfhd"):
                struct.pack_into(">I", buf, b.body_start + 4, 1)
    return bytes(buf)


# ------------------------------------------------------------------------------------------------
# Tools


def framemd5_8(path, map_spec, label, key=None, copy=False):
    """ffmpeg 8.1 framemd5 of one stream: (Decoded, returncode, stderr tail). With `key`, ffmpeg's
    mov demuxer decrypts (cenc/cbcs); with copy=True, packets are hashed instead of frames."""
    cmd = [tool("ffmpeg8"), "-hide_banner", "-nostdin", "-v", "error"]
    if key is not None:
        cmd += ["-decryption_key", key.hex() if isinstance(key, bytes) else key]
    cmd += ["-copyts", "-i", str(path), "-map", map_spec]
    if copy:
        cmd += ["-c", "copy"]
    cmd += ["-f", "framemd5", "-"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    dec = mu.Decoded(label, Fraction(1, 1))
    for line in p.stdout.splitlines():
        if line.startswith("#tb 0:"):
            dec.tb = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            cols = [c.strip() for c in line.split(",")]
            dec.frames.append(mu.Frame(int(cols[2]), int(cols[3]), int(cols[4]), cols[5]))
    return dec, p.returncode, p.stderr[-1500:]


_src_cache = {}


def source_framemd5_8(path, map_spec):
    k = (str(path), map_spec)
    if k not in _src_cache:
        dec, rc, err = framemd5_8(path, map_spec, f"source {Path(path).name} [{map_spec}]")
        assert rc == 0 and dec.frames, f"ffmpeg8 could not decode the source {path}: {err}"
        _src_cache[k] = dec
    return _src_cache[k]


_src_pkt_cache = {}


def source_packet_md5s(path, map_spec):
    k = (str(path), map_spec)
    if k not in _src_pkt_cache:
        dec, rc, err = framemd5_8(path, map_spec, "source packets", copy=True)
        assert rc == 0 and dec.frames, f"ffmpeg8 -c copy failed on the source {path}: {err}"
        _src_pkt_cache[k] = dec
    return _src_pkt_cache[k]


def packager_decrypt(enc_path, kind, keys, out_path):
    """Shaka Packager raw-key decryption; keys = [(kid bytes, key bytes)]. (rc, output tail)."""
    data = Path(enc_path).read_bytes()
    src = Path(str(out_path) + ".in.mp4")
    src.write_bytes(with_track_id_1(data))
    spec = ",".join(f"label=k{i}:key_id={kid.hex()}:key={key.hex()}" for i, (kid, key) in enumerate(keys))
    cmd = [tool("packager"), f"in={src},stream={kind},output={out_path}",
           "--enable_raw_key_decryption", "--keys", spec]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip() and not l.startswith("I")]
    return p.returncode, "\n".join(lines[-4:])


def openssl_aes128_decrypt(data, key, iv):
    """(rc, plaintext, stderr) of `openssl enc -d -aes-128-cbc` (PKCS#7 padding checked)."""
    p = subprocess.run(["openssl", "enc", "-d", "-aes-128-cbc", "-K", key.hex(), "-iv", iv.hex()],
                       input=data, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")[-500:]
