-- API key secrets of service accounts, hashed (SHA-256: the secrets are 256 random bits, so a
-- slow hash adds nothing). A key authenticates only while this row is unrevoked and the
-- account's events list it as issued.
CREATE TABLE api_keys (
    key_id      uuid        PRIMARY KEY,
    account_id  uuid        NOT NULL,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE service_account_view_template (
    id         uuid        PRIMARY KEY,
    company_id uuid        NOT NULL,
    name       text        NOT NULL,
    roles      text[]      NOT NULL,
    is_active  boolean     NOT NULL,
    -- [{key_id, prefix, issued_at, revoked_at}]
    keys       jsonb       NOT NULL DEFAULT '[]',
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX service_account_view_template_company ON service_account_view_template (company_id, created_at, id);
CREATE VIEW service_account_view AS SELECT * FROM service_account_view_template;
