-- Drafts: scalar columns for lookups and compare-and-set, the four step sections as JSONB.
CREATE TABLE drafts (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    title      TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    sections   JSONB NOT NULL
);
CREATE INDEX drafts_by_owner ON drafts (owner, updated_at DESC);
