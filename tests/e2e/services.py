"""Real servers the end-to-end tests start themselves, on loopback and a temp folder, and stop:
PostgreSQL (Debian's server), nginx (static files, or a proxy_cache tier in front of origins),
an S3-compatible server (moto's standalone `moto_server`, PyPI moto) and a small TCP proxy that
counts bytes and can delay answers (a slow object store).

Nothing here is a mock: each class runs the real daemon and waits until it answers.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, timeout=20.0, proc=None, what="server"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def _pg_bin(name):
    """Debian's PostgreSQL server binaries (package postgresql-15), or whatever is on PATH."""
    for major in ("17", "16", "15"):
        p = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
        if p.exists():
            return str(p)
    p = shutil.which(name)
    assert p, f"{name} not found: .ci/run installs Debian's postgresql"
    return p


class Postgres:
    """A throwaway PostgreSQL cluster: initdb in a temp dir, one database, trust auth on
    127.0.0.1 only. PostgreSQL refuses to run as root, so as root it runs as the `postgres`
    user that Debian's package creates.

    `url` is a libpq URL (postgres://user@127.0.0.1:PORT/db); `stop()` / `start()` can be
    called repeatedly (outage scenarios); `close()` removes everything.
    """

    def __init__(self, db="drm"):
        self.dir = Path(tempfile.mkdtemp(prefix="drm-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.db = db
        self.user = "postgres"
        self._as = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
                   "--no-sync", "-E", "UTF8"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n")
        self.start()
        self.psql(f"CREATE DATABASE {db}", db="postgres")

    @property
    def url(self):
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{self.db}"

    def _run(self, args, **kw):
        return subprocess.run(self._as + args, check=True, capture_output=True, text=True, **kw)

    def start(self):
        self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "30",
                   "start"])
        _wait_port(self.port, what="postgres")

    def stop(self, mode="fast"):
        subprocess.run(self._as + [_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
                       capture_output=True, text=True)

    def psql(self, sql, db=None):
        """Runs `sql`; returns stdout (tuples only, unaligned)."""
        psql = shutil.which("psql") or _pg_bin("psql")
        r = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", db or self.db,
                            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], check=True, capture_output=True, text=True)
        return r.stdout

    def close(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


NGINX_CONF = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    types {{
        application/dash+xml mpd;
        application/vnd.apple.mpegurl m3u8;
        video/mp4 mp4 m4s;
        application/json json;
    }}
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    {http_extra}
    server {{
        listen 127.0.0.1:{port};
        {server}
    }}
}}
"""


class Nginx:
    """nginx from Debian on a free loopback port, with a config made of `server` directives
    (and optional `http_extra`); `{prefix}` in them is this instance's temp folder."""

    def __init__(self, server, http_extra=""):
        self.prefix = Path(tempfile.mkdtemp(prefix="drm-nginx-"))
        self.port = free_port()
        # As root, workers would run as `nobody` and could not read the tests' 0700 temp folders.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(user=user, prefix=self.prefix, port=self.port,
                                 server=server.replace("{prefix}", str(self.prefix)),
                                 http_extra=http_extra.replace("{prefix}", str(self.prefix)))
        (self.prefix / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_port(self.port, proc=self.proc, what="nginx")
        self.base_url = f"http://127.0.0.1:{self.port}"

    @classmethod
    def static(cls, root, location_extra="add_header Access-Control-Allow-Origin * always;"):
        """Plain static files from `root`, as any CDN or web server would serve them."""
        return cls(f"root {root};\n        location / {{ {location_extra} }}")

    @classmethod
    def cache(cls, upstreams, extra_location=""):
        """A CDN-like cache tier: proxy_cache in front of `upstreams` ("127.0.0.1:PORT", ...),
        honouring the origin's Cache-Control, next upstream on error. `X-Cache-Status` says
        HIT/MISS/EXPIRED for each answer."""
        servers = "\n".join(f"server {u} max_fails=1 fail_timeout=2s;" for u in upstreams)
        http_extra = (f"proxy_cache_path {{prefix}}/cache levels=1:2 keys_zone=origin:10m max_size=1g "
                      f"inactive=1h use_temp_path=off;\n    upstream origins {{ {servers} keepalive 16; }}")
        server = ("location / {\n"
                  "            proxy_pass http://origins;\n"
                  "            proxy_http_version 1.1;\n"
                  "            proxy_set_header Connection \"\";\n"
                  "            proxy_cache origin;\n"
                  "            proxy_cache_revalidate on;\n"
                  "            proxy_cache_lock on;\n"
                  "            proxy_next_upstream error timeout http_502 http_503;\n"
                  "            add_header X-Cache-Status $upstream_cache_status always;\n"
                  f"            {extra_location}\n"
                  "        }")
        return cls(server, http_extra=http_extra)

    def url(self, path):
        return self.base_url + path

    def access_log(self):
        p = self.prefix / "access.log"
        return p.read_text() if p.exists() else ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.prefix, ignore_errors=True)


class S3Server:
    """moto's standalone S3 server (`moto_server`, PyPI `moto[server]`) on a free loopback port.
    State lives in memory: `stop()` loses the buckets (an outage), `start()` comes back empty on
    the same port, so an outage test uploads again what it needs (`put` with the same bytes
    gives the same ETag). `client()` is a boto3 client, an S3 client independent of the
    origin's."""

    KEY_ID, SECRET = "testing-key-id", "testing-secret-key-not-shown"

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="drm-s3-"))
        self.proc = None
        self.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        exe = shutil.which("moto_server")
        assert exe, "moto_server not found: .ci/run installs tests/requirements.txt (moto[server])"
        self._log = open(self.dir / "moto.log", "ab")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        _wait_port(self.port, proc=self.proc, what="moto_server")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def client(self):
        import boto3  # moto's own dependency
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.KEY_ID, aws_secret_access_key=self.SECRET,
                            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def env(self):
        """Credentials for an origin node, the AWS way (environment)."""
        return {"AWS_ACCESS_KEY_ID": self.KEY_ID, "AWS_SECRET_ACCESS_KEY": self.SECRET}

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TcpProxy:
    """A loopback TCP proxy in front of `target_port`, counting the bytes each way. `delay`
    (seconds) holds every chunk of the answer that long before passing it on: a slow store.
    `refuse = True` closes new connections at once."""

    def __init__(self, target_port):
        self.target = target_port
        self.delay = 0.0
        self.refuse = False
        self.down = 0  # bytes from the target to the clients
        self.up = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def bytes_down(self):
        with self._lock:
            return self.down

    def _count(self, up, n):
        with self._lock:
            if up:
                self.up += n
            else:
                self.down += n

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=30)
        except OSError:
            client.close()
            return

        def pump(src, dst, up):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if not up and self.delay:
                        time.sleep(self.delay)
                    dst.sendall(data)
                    self._count(up, len(data))
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(client, upstream, True), daemon=True)
        t.start()
        pump(upstream, client, False)
        t.join(timeout=60)
        client.close()
        upstream.close()

    def close(self):
        self._closed = True
        self._sock.close()
