-- The calibration log: one row per completed run (a draft and the run's start), kept under its
-- owner; the row itself as JSON, so a new field needs no migration.
CREATE TABLE calibration (
    owner       TEXT NOT NULL,
    draft_id    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    row_json    TEXT NOT NULL,
    PRIMARY KEY (owner, draft_id, started_at)
);
CREATE INDEX calibration_by_owner ON calibration (owner, recorded_at DESC);
