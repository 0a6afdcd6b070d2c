-- One counter per organization, bumped on every routing-relevant write. Other
-- instances compare counters periodically to repair missed notifications.
CREATE TABLE org_change_counters (
    organization_id  TEXT PRIMARY KEY,
    version          INTEGER NOT NULL
);
