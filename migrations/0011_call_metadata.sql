-- What the requester of an ad-hoc call asked to keep with it (the seed's `metadata`).
ALTER TABLE call_view_template ADD COLUMN metadata jsonb;

-- A company's defaults for its calls (TenantSettings stream).
CREATE TABLE tenant_settings_view_template (
    tenant_id  uuid        PRIMARY KEY,
    provider   jsonb,
    session    jsonb,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE VIEW tenant_settings_view AS SELECT * FROM tenant_settings_view_template;
