-- IVR flows: read-model templates (see 0004_campaigns.sql for the `<base>_template` + view
-- pattern). Projection `ivr_flow_view` owns both tables.

-- One row per flow that is not deleted: the draft, its validator findings, the versions.
CREATE TABLE ivr_flow_view_template (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    name           text        NOT NULL,
    campaign_id    uuid,
    team_id        uuid,
    -- draft (never published) | published
    status         text        NOT NULL,
    draft          jsonb       NOT NULL,
    -- The validator's findings on the draft (no tenant configuration: any public webhook host,
    -- transfer targets not looked up), errors and warnings.
    issues         jsonb       NOT NULL,
    -- The draft differs from the latest published version.
    draft_changed  boolean     NOT NULL,
    latest_version integer     NOT NULL DEFAULT 0,
    live_version   integer,
    version        bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    published_at   timestamptz
);
CREATE INDEX ivr_flow_view_template_tenant ON ivr_flow_view_template (tenant_id, created_at, id);
CREATE INDEX ivr_flow_view_template_campaign ON ivr_flow_view_template (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE VIEW ivr_flow_view AS SELECT * FROM ivr_flow_view_template;

-- Published versions: immutable.
CREATE TABLE ivr_flow_version_view_template (
    flow_id      uuid        NOT NULL,
    version      integer     NOT NULL,
    tenant_id    uuid        NOT NULL,
    flow         jsonb       NOT NULL,
    published_at timestamptz NOT NULL,
    published_by text,
    PRIMARY KEY (flow_id, version)
);
CREATE VIEW ivr_flow_version_view AS SELECT * FROM ivr_flow_version_view_template;
