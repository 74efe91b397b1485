-- Campaigns, contacts, imports, call lists, templates and the do-not-call list: read-model
-- templates. Each `<base>_template` is the schema of a projection build's `<base>_b<N>`;
-- `<base>` is a view on the serving build. Index names start with `<base>_template_`.

-- Projection `campaign_view` -------------------------------------------------------------

CREATE TABLE campaign_view_template (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    name             text        NOT NULL,
    status           text        NOT NULL,
    campaign_type    text        NOT NULL,
    primary_provider text        NOT NULL,
    dialing_mode     text        NOT NULL,
    settings         jsonb       NOT NULL,
    origin           jsonb       NOT NULL,
    total_calls      integer     NOT NULL DEFAULT 0,
    calls_in_flight  integer     NOT NULL DEFAULT 0,
    connected_calls  integer     NOT NULL DEFAULT 0,
    successful_calls integer     NOT NULL DEFAULT 0,
    failed_calls     integer     NOT NULL DEFAULT 0,
    talk_seconds     bigint      NOT NULL DEFAULT 0,
    version          bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    paused_at        timestamptz,
    ended_at         timestamptz,
    archived_at      timestamptz
);
CREATE INDEX campaign_view_template_tenant ON campaign_view_template (tenant_id, created_at, id);
CREATE INDEX campaign_view_template_status ON campaign_view_template (status) WHERE status = 'active';
CREATE VIEW campaign_view AS SELECT * FROM campaign_view_template;

-- Calls per outcome and disposition ('' when none), per campaign.
CREATE TABLE campaign_outcome_view_template (
    campaign_id  uuid    NOT NULL,
    outcome      text    NOT NULL,
    disposition  text    NOT NULL,
    calls        integer NOT NULL,
    PRIMARY KEY (campaign_id, outcome, disposition)
);
CREATE VIEW campaign_outcome_view AS SELECT * FROM campaign_outcome_view_template;

CREATE TABLE campaign_template_view_template (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    name            text        NOT NULL,
    description     text,
    settings        jsonb       NOT NULL,
    source_campaign uuid,
    version         bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX campaign_template_view_template_tenant ON campaign_template_view_template (tenant_id, created_at, id);
CREATE VIEW campaign_template_view AS SELECT * FROM campaign_template_view_template;

CREATE TABLE call_list_view_template (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    campaign_id uuid        NOT NULL,
    name        text        NOT NULL,
    filter      jsonb       NOT NULL,
    sort        jsonb       NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX call_list_view_template_tenant ON call_list_view_template (tenant_id, created_at, id);
CREATE INDEX call_list_view_template_campaign ON call_list_view_template (campaign_id);
CREATE VIEW call_list_view AS SELECT * FROM call_list_view_template;

-- Projection `contact_view` ---------------------------------------------------------------

CREATE TABLE contact_view_template (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    phone_number    text        NOT NULL,
    first_name      text,
    last_name       text,
    email           text,
    company         text,
    language        text,
    timezone        text,
    timezones       text[]      NOT NULL,
    custom_fields   jsonb       NOT NULL,
    tags            text[]      NOT NULL,
    lists           text[]      NOT NULL,
    max_attempts    integer     NOT NULL,
    do_not_call     boolean     NOT NULL,
    consent         text        NOT NULL,
    -- pending | calling | completed | failed | do_not_call (the original's words)
    status          text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_outcome    text,
    import_id       uuid,
    source_row      bigint,
    -- Sequence of the contact's own stream (0 while only its import has written it).
    version         bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX contact_view_template_tenant ON contact_view_template (tenant_id, created_at, id);
CREATE INDEX contact_view_template_phone ON contact_view_template (tenant_id, phone_number);
CREATE INDEX contact_view_template_import ON contact_view_template (import_id) WHERE import_id IS NOT NULL;
CREATE INDEX contact_view_template_tags ON contact_view_template USING gin (tags);
CREATE INDEX contact_view_template_lists ON contact_view_template USING gin (lists);
CREATE VIEW contact_view AS SELECT * FROM contact_view_template;

-- Per campaign and contact: the attempts that decide who is dialed next.
CREATE TABLE campaign_contact_view_template (
    campaign_id      uuid        NOT NULL,
    contact_id       uuid        NOT NULL,
    attempts         integer     NOT NULL,
    in_flight        boolean     NOT NULL,
    last_attempt_at  timestamptz NOT NULL,
    last_outcome     text,
    last_disposition text,
    abandoned_at     timestamptz,
    done             boolean     NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE VIEW campaign_contact_view AS SELECT * FROM campaign_contact_view_template;

CREATE TABLE contact_import_view_template (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    status         text        NOT NULL,
    format         text        NOT NULL,
    file_name      text,
    size_bytes     bigint      NOT NULL,
    contact_list   text,
    total_rows     bigint,
    processed_rows bigint      NOT NULL DEFAULT 0,
    successful     bigint      NOT NULL DEFAULT 0,
    failed         bigint      NOT NULL DEFAULT 0,
    duplicates     bigint      NOT NULL DEFAULT 0,
    do_not_call    bigint      NOT NULL DEFAULT 0,
    batches        bigint      NOT NULL DEFAULT 0,
    error_code     text,
    error_message  text,
    error_row      bigint,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    finished_at    timestamptz
);
CREATE INDEX contact_import_view_template_tenant ON contact_import_view_template (tenant_id, created_at, id);
CREATE VIEW contact_import_view AS SELECT * FROM contact_import_view_template;

CREATE TABLE contact_import_problem_view_template (
    import_id uuid   NOT NULL,
    row_no    bigint NOT NULL,
    seq       integer NOT NULL,
    field     text,
    code      text   NOT NULL,
    message   text   NOT NULL,
    PRIMARY KEY (import_id, row_no, seq)
);
CREATE VIEW contact_import_problem_view AS SELECT * FROM contact_import_problem_view_template;

CREATE TABLE do_not_call_view_template (
    tenant_id    uuid        NOT NULL,
    phone_number text        NOT NULL,
    reason       text,
    source       text,
    added_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, phone_number)
);
CREATE VIEW do_not_call_view AS SELECT * FROM do_not_call_view_template;
