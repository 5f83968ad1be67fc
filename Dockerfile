# Multi-stage image: build the release binary and the demo page's player library, then a slim
# runtime as a non-root user. Assets and configuration are mounted read-only; /var/lib/drm-origin
# (key store, state) is the one writable volume.
#   docker build -t drm-origin .
#   docker run -p 8080:8080 -v "$PWD/assets:/srv/assets:ro" \
#     -v "$PWD/config/drm-origin.toml:/etc/drm-origin/drm-origin.toml:ro" -v drm-state:/var/lib/drm-origin drm-origin
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin drm-origin

FROM node:20-bookworm-slim AS player
WORKDIR /player
COPY player/package.json player/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/drm-origin --shell /usr/sbin/nologin drm-origin \
    && mkdir -p /var/lib/drm-origin /etc/drm-origin /srv/assets /opt/drm-origin/player \
    && chown drm-origin:drm-origin /var/lib/drm-origin
COPY --from=build /src/target/release/drm-origin /usr/local/bin/drm-origin
COPY --from=player /player/node_modules/shaka-player/dist/shaka-player.compiled.js /opt/drm-origin/player/shaka-player.compiled.js
COPY config/drm-origin.example.toml /etc/drm-origin/drm-origin.toml
USER drm-origin
WORKDIR /var/lib/drm-origin
VOLUME ["/var/lib/drm-origin"]
EXPOSE 8080
# Listen on all interfaces inside the container (publish the port with -p).
ENV DRM_ORIGIN_PLAYER_SCRIPT=/opt/drm-origin/player/shaka-player.compiled.js
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/drm-origin"]
CMD ["serve", "--config", "/etc/drm-origin/drm-origin.toml", "--assets", "/srv/assets", "--listen", "0.0.0.0:8080"]
