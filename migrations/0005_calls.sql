-- Calls: read-model templates of projection `call_view`. Each `<base>_template` is the schema of
-- a projection build's `<base>_b<N>`; `<base>` is a view on the serving build. Index names start
-- with `<base>_template_`.

-- One row per call: where it stands and how it ended.
CREATE TABLE call_view_template (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    -- inbound | outbound
    direction        text        NOT NULL,
    provider         text        NOT NULL,
    provider_call_id text,
    from_number      text        NOT NULL,
    to_number        text        NOT NULL,
    campaign_id      uuid,
    contact_id       uuid,
    -- initiated | ringing | in_progress | completed | failed
    status           text        NOT NULL,
    answered_by      text,
    -- connected | no_answer | busy | failed | voicemail | abandoned (once ended)
    outcome          text,
    disposition      text,
    hangup_cause     text,
    failure_reason   text,
    -- Talk time: from the answer to the end (0 when never answered).
    duration_seconds bigint,
    recording_url    text,
    transfer_target  text,
    started_at       timestamptz NOT NULL,
    answered_at      timestamptz,
    ended_at         timestamptz,
    -- Sequence of the call's stream last applied.
    version          bigint      NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX call_view_template_tenant ON call_view_template (tenant_id, started_at, id);
CREATE INDEX call_view_template_campaign ON call_view_template (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX call_view_template_contact ON call_view_template (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX call_view_template_provider_call ON call_view_template (tenant_id, provider_call_id)
    WHERE provider_call_id IS NOT NULL;
CREATE VIEW call_view AS SELECT * FROM call_view_template;

-- Every step of every call, in stream order: status changes, media, DTMF, transcript segments,
-- AI function calls, transfers, recordings. `detail` is the event's payload without what the
-- row already says (`at`, and the call's own campaign and contact).
CREATE TABLE call_timeline_view_template (
    call_id uuid        NOT NULL,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL,
    kind    text        NOT NULL,
    detail  jsonb       NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE VIEW call_timeline_view AS SELECT * FROM call_timeline_view_template;
