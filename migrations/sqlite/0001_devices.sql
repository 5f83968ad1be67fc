-- Device registry, version 1: devices, domains and their members, and the replay table.
-- Keys are public JWKs (JSON text); the database holds no secret at all.
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    subject         TEXT NOT NULL,
    enc             TEXT NOT NULL,
    sig             TEXT NOT NULL,
    thumb           TEXT NOT NULL UNIQUE,
    gen             INTEGER NOT NULL CHECK (gen >= 1),
    state           TEXT NOT NULL CHECK (state IN ('active', 'reset', 'revoked')),
    chain           INTEGER NOT NULL DEFAULT 0 CHECK (chain IN (0, 1)),
    entitlement     TEXT NOT NULL,
    entitled_until  INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL
);
CREATE INDEX devices_by_subject ON devices (subject, state);

CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    key_version INTEGER NOT NULL CHECK (key_version >= 1),
    created     INTEGER NOT NULL
);

CREATE TABLE members (
    domain  TEXT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    device  TEXT NOT NULL REFERENCES devices (id),
    joined  INTEGER NOT NULL,
    PRIMARY KEY (domain, device)
);
CREATE INDEX members_by_device ON members (device);

CREATE TABLE seen (
    jti     TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE INDEX seen_by_expiry ON seen (expires);
