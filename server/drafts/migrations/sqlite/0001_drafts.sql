-- Drafts: scalar columns for lookups and compare-and-set, the four step sections as JSON.
CREATE TABLE drafts (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    title      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sections   TEXT NOT NULL
);
CREATE INDEX drafts_by_owner ON drafts (owner, updated_at DESC);
