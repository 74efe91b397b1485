-- The contact-import queue: any instance picks up a queued import (FOR UPDATE SKIP LOCKED), one
-- import per tenant at a time (duplicate detection reads the tenant's contacts), tenants in
-- turn by their oldest waiting import. The job row carries what the worker needs; the
-- import's progress and outcome are events of the ContactImport stream.
CREATE TABLE import_jobs (
    import_id  uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    job        jsonb       NOT NULL,
    -- The spooled upload; reachable from the instance that took the upload (or all of them,
    -- with a shared spool directory).
    spool_path text        NOT NULL,
    state      text        NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    queued_at  timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX import_jobs_queued ON import_jobs (queued_at) WHERE state = 'queued';
CREATE INDEX import_jobs_tenant ON import_jobs (tenant_id, state);
