"""Device licensing under faults: `kill -9` in the middle of `licenses generate`, a full disk
(a small tmpfs as the license folder), and the origin killed during a burst of registrations
(SQLite and PostgreSQL). Nothing partial or unsigned is ever reachable by the static server,
the next run completes the folder (with the same bytes a clean run writes), and the registry
stays consistent."""
import json
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import device_util as du
from conftest import ASSETS, BIN, Origin
from device_util import PyDevice, Stack
from joserfc.jwk import ECKey
from services import Postgres

DEVICES = 150


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """One origin with DEVICES registered devices (one subject each), registered by joserfc."""
    s = Stack(tmp_path_factory.mktemp("device-faults"), "sqlite")
    base = s.origin.base_url
    toks = {i: s.tok(f"crowd-{i}") for i in range(DEVICES)}

    def reg(i):
        PyDevice().register(base, toks[i])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reg, range(DEVICES)))
    yield s
    s.close()


def other_folder_config(stack, name, licenses_dir):
    """The same registry and keys, another license folder (a second writer)."""
    cfg = stack.tmp / f"{name}.toml"
    cfg.write_text(du.config_text(stack.tmp, stack.registry, licenses_dir))
    return cfg


def indexes(public):
    return list(Path(public).glob("v1/d/*/*/index.json"))


def assert_same_as_server(stack, public):
    """A completed folder holds exactly the server's files, byte for byte (deterministic
    output: the same inputs give the same bytes in any process)."""
    ours, theirs = du.public_files(public), du.public_files(stack.public)
    assert ours == theirs, f"{len(ours)} files vs the server's {len(theirs)}"
    for rel in ours:
        assert (Path(public) / rel).read_bytes() == (stack.public / rel).read_bytes(), rel


def generate(cfg, check=True):
    p = du.run(["licenses", "generate", "--config", cfg, "--assets", ASSETS, "--json"], check=check)
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def test_kill9_during_generate(crowd):
    folder = crowd.tmp / "lic-killed"
    cfg = other_folder_config(crowd, "killed", folder)
    p = subprocess.Popen([str(BIN), "licenses", "generate", "--config", str(cfg), "--assets", str(ASSETS)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and len(indexes(folder / "public")) < 10:
        time.sleep(0.005)
    assert p.poll() is None, "generate finished before it could be killed: give it more devices"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    n, problems = du.check_public_tree(folder / "public", crowd.jwks)
    assert not problems, problems
    done = len(indexes(folder / "public"))
    assert 0 < done < DEVICES, f"killed with {done} of {DEVICES} folders complete"
    # Leftovers of the killed writer, if any, are in staging/ (never served) and are cleaned by
    # the next writer.
    _, report = generate(cfg)
    assert report["written"] > 0, report
    assert not list((folder / "staging").glob("*.tmp"))
    n, problems = du.check_public_tree(folder / "public", crowd.jwks)
    assert not problems, problems
    assert len(indexes(folder / "public")) == DEVICES
    assert_same_as_server(crowd, folder / "public")
    _, again = generate(cfg)
    assert again["written"] == 0 and again["removed"] == 0, again
    du.run(["licenses", "check", "--config", cfg])


def test_full_disk(crowd):
    folder = crowd.tmp / "lic-full"
    folder.mkdir()
    # 200 KiB of tmpfs: room for a few dozen files of the ~600 this folder needs.
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)], capture_output=True, text=True)
    assert m.returncode == 0, f"cannot mount a small tmpfs here (root needed): {m.stderr}"
    try:
        cfg = other_folder_config(crowd, "full", folder)
        p, _ = generate(cfg, check=False)
        assert p.returncode != 0 and "license folder full" in p.stderr, p.stderr
        assert "No space left on device" in p.stderr, p.stderr
        n, problems = du.check_public_tree(folder / "public", crowd.jwks)
        assert not problems, problems
        assert len(indexes(folder / "public")) < DEVICES
        assert not list((folder / "staging").glob("*.tmp")), "a failed write leaves its temporary file"
        subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)
        _, report = generate(cfg)
        assert report["written"] > 0
        assert_same_as_server(crowd, folder / "public")
        du.run(["licenses", "check", "--config", cfg])
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def registry_rows(backend, registry, pg):
    """(devices rows as dicts, seen count), read straight from the database."""
    cols = ["id", "subject", "enc", "sig", "thumb", "gen", "state"]
    if backend == "sqlite":
        db = sqlite3.connect(registry.removeprefix("sqlite:"))
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = [dict(zip(cols, r)) for r in db.execute(f"SELECT {', '.join(cols)} FROM devices")]
        seen = db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
        db.close()
        return rows, seen
    pairs = ", ".join(f"'{c}', {c}" for c in cols)
    out = pg.psql(f"SELECT json_agg(json_build_object({pairs})) FROM devices")
    rows = json.loads(out.strip() or "[]") or []
    seen = int(pg.psql("SELECT COUNT(*) FROM seen").strip())
    return rows, seen


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_registry_consistent_when_killed_during_registrations(backend, tmp_path):
    pg = Postgres() if backend == "postgres" else None
    try:
        registry = pg.url if pg else f"sqlite:{tmp_path}/state/devices.sqlite3"
        (tmp_path / "state").mkdir()
        cfg = tmp_path / "origin.toml"
        cfg.write_text(du.config_text(tmp_path, registry, tmp_path / "licenses"))
        origin = Origin(ASSETS, config=cfg)
        subjects = [f"burst-{i}" for i in range(6)]
        toks = {s: du.token(cfg, s) for s in subjects}
        devices = [(PyDevice(), subjects[i % len(subjects)]) for i in range(60)]
        results = {}

        def reg(item):
            d, sub = item
            try:
                status, body = du.post(origin.base_url, "/.drm/device/register", {"request": d.register_request()},
                                       toks[sub], timeout=10)
                results[d.id] = status
            except OSError as e:
                results[d.id] = f"lost: {type(e).__name__}"

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(reg, x) for x in devices]
            while sum(1 for f in futures if f.done()) < 12:
                time.sleep(0.002)
            origin.proc.kill()
            for f in futures:
                f.result()
        origin.stop()
        answered = {k for k, v in results.items() if v == 201}
        lost = {k for k, v in results.items() if not isinstance(v, int)}
        assert answered and lost, f"the kill should land mid-burst: {results}"
        assert set(results.values()) <= {201, 403} | {v for v in results.values() if isinstance(v, str)}, results

        rows, seen = registry_rows(backend, registry, pg)
        by_id = {r["id"]: r for r in rows}
        assert answered <= set(by_id), "a device answered 201 is missing from the registry"
        for r in rows:
            enc = ECKey.import_key(json.loads(r["enc"]))
            ECKey.import_key(json.loads(r["sig"]))
            assert r["thumb"] == enc.thumbprint() and int(r["gen"]) == 1 and r["state"] == "active", r
        for s in subjects:
            assert sum(1 for r in rows if r["subject"] == s) <= 4, f"device limit broken for {s}"
        assert seen >= len(rows)

        # Back up: lost answers are retried with the same keys and never conflict; the folder is
        # completed for every registered device.
        origin = Origin(ASSETS, config=cfg)
        try:
            for d, sub in devices:
                if d.id in lost:
                    status, body = du.post(origin.base_url, "/.drm/device/register",
                                           {"request": d.register_request()}, toks[sub])
                    assert status in (200, 201, 403), (status, body)
                    assert status != 200 or d.id in by_id, "200 means it was registered before the kill"
            generate(cfg)
            rows, _ = registry_rows(backend, registry, pg)
            public = tmp_path / "licenses" / "public"
            n, problems = du.check_public_tree(public, (public / "v1" / "keys.json").read_text())
            assert not problems, problems
            for r in rows:
                assert (public / "v1" / "d" / r["id"] / "1" / "index.json").exists(), r["id"]
        finally:
            origin.stop()
    finally:
        if pg:
            pg.close()
