-- Device registry, version 1: devices, domains and their members, and the replay table.
-- Keys are public JWKs (JSON text); the database holds no secret at all.
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    subject         TEXT NOT NULL,
    enc             TEXT NOT NULL,
    sig             TEXT NOT NULL,
    thumb           TEXT NOT NULL UNIQUE,
    gen             BIGINT NOT NULL CHECK (gen >= 1),
    state           TEXT NOT NULL CHECK (state IN ('active', 'reset', 'revoked')),
    chain           BOOLEAN NOT NULL DEFAULT FALSE,
    entitlement     TEXT NOT NULL,
    entitled_until  BIGINT NOT NULL,
    created         BIGINT NOT NULL,
    updated         BIGINT NOT NULL
);
CREATE INDEX devices_by_subject ON devices (subject, state);

CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    key_version BIGINT NOT NULL CHECK (key_version >= 1),
    created     BIGINT NOT NULL
);

CREATE TABLE members (
    domain  TEXT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    device  TEXT NOT NULL REFERENCES devices (id),
    joined  BIGINT NOT NULL,
    PRIMARY KEY (domain, device)
);
CREATE INDEX members_by_device ON members (device);

CREATE TABLE seen (
    jti     TEXT PRIMARY KEY,
    expires BIGINT NOT NULL
);
CREATE INDEX seen_by_expiry ON seen (expires);
