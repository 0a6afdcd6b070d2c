-- Per-organization secrets for `$secret(name)` in routing workflows. Write-only
-- through the API; stored as given because workflows must send them.
CREATE TABLE workflow_secrets (
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    value            TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);
