-- Authentication state that is not domain history: secrets and session bookkeeping. The events
-- say who registered, changed a password or lost a role; these tables hold what must never be
-- exported or published (password hashes) and what changes on every login (refresh tokens).

-- E-mail → user: the platform-wide uniqueness of e-mail addresses, reserved before the
-- `UserRegistered` event is appended (a reservation whose user never appeared can be taken over).
CREATE TABLE user_emails (
    email      text        PRIMARY KEY,
    user_id    uuid        NOT NULL UNIQUE,
    company_id uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_credentials (
    user_id       uuid        PRIMARY KEY,
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens rotate: each use issues a new one in the same family. Presenting a used token
-- again means it was stolen, and the whole family is revoked.
CREATE TABLE refresh_tokens (
    jti        uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    family_id  uuid        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Failed logins per account and per client address, for throttling across all instances.
CREATE TABLE login_failures (
    scope      text        NOT NULL CHECK (scope IN ('account', 'address')),
    key        text        NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_key ON login_failures (scope, key, failed_at);

CREATE TABLE user_view_template (
    id                  uuid        PRIMARY KEY,
    company_id          uuid        NOT NULL,
    email               text        NOT NULL,
    full_name           text        NOT NULL,
    roles               text[]      NOT NULL,
    is_active           boolean     NOT NULL,
    version             bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    password_changed_at timestamptz
);
CREATE INDEX user_view_template_company ON user_view_template (company_id, created_at, id);
CREATE VIEW user_view AS SELECT * FROM user_view_template;
