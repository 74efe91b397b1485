-- The event store: postgres-es's table shape plus the columns the catch-up reader needs.
-- postgres-es always names its columns on insert, so the extra columns fill by default.
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- Catch-up order is (tx_id, global_position): see projections/src/runner.rs.
CREATE UNIQUE INDEX events_tx_position ON events (tx_id, global_position);
-- Positions handed to clients (read-your-writes) are looked up by global_position.
-- Not UNIQUE: postgres-es reads every unique violation as an optimistic-lock conflict.
CREATE INDEX events_global_position ON events (global_position);
CREATE INDEX events_idempotency ON events ((metadata ->> 'idempotency_scope'), (metadata ->> 'idempotency_key'))
    WHERE metadata ? 'idempotency_key';
CREATE INDEX events_recorded_at ON events (recorded_at);

-- postgres-es's snapshot table. We do not snapshot (see DESIGN.md); it exists so that the
-- library's repository finds the table it expects.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- One row per build of a projection. A build owns its read-model tables (`<table>_b<build_id>`)
-- and its checkpoint; the active build is what the `<table>` views point at.
CREATE TABLE projection_builds (
    name          text        NOT NULL,
    build_id      integer     NOT NULL CHECK (build_id > 0),
    version       integer     NOT NULL CHECK (version > 0),
    status        text        NOT NULL CHECK (status IN ('building', 'active', 'retired')),
    last_tx       xid8        NOT NULL DEFAULT '0',
    last_position bigint      NOT NULL DEFAULT 0,
    events_done   bigint      NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    retired_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, build_id)
);
CREATE UNIQUE INDEX projection_builds_one_active ON projection_builds (name) WHERE status = 'active';
CREATE UNIQUE INDEX projection_builds_one_building ON projection_builds (name) WHERE status = 'building';

-- Read-model templates. Builds create their tables with `LIKE <template> INCLUDING ALL`, so the
-- schema lives here and nowhere else. The view of the same name serves reads.
CREATE TABLE company_view_template (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL,
    domain        text        NOT NULL,
    size          text,
    industry      text,
    description   text,
    website       text,
    is_active     boolean     NOT NULL,
    user_count    integer     NOT NULL DEFAULT 0,
    campaign_count integer    NOT NULL DEFAULT 0,
    version       bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deactivated_at timestamptz
);
CREATE INDEX company_view_template_name ON company_view_template (lower(name), id);
CREATE INDEX company_view_template_created ON company_view_template (created_at, id);
CREATE VIEW company_view AS SELECT * FROM company_view_template;

-- Outcomes of commands sent with an idempotency key, written under the key's advisory lock
-- after the command completed. The events (metadata `idempotency_key`) are the authority for
-- commands that appended; this table also remembers commands that changed nothing.
CREATE TABLE command_outcomes (
    -- Whose key it is: the caller's tenant (or `platform`), not the target aggregate's.
    scope               text        NOT NULL,
    idempotency_key     text        NOT NULL,
    request_fingerprint text,
    aggregate_type      text        NOT NULL,
    aggregate_id        text        NOT NULL,
    outcome             jsonb       NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idempotency_key)
);
