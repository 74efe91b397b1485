-- Agents, their state timeline, teams, queues and routing rules (issue 13).

-- One row per agent (Agent stream): the profile, the current state and since when.
CREATE TABLE agent_view_template (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    display_name    text        NOT NULL,
    profile         jsonb       NOT NULL,
    state           text        NOT NULL,
    reason          text,
    state_since     timestamptz NOT NULL,
    available_since timestamptz,
    missed_in_a_row integer     NOT NULL DEFAULT 0,
    active_calls    integer     NOT NULL DEFAULT 0,
    offer           jsonb,
    version         bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX agent_view_template_tenant ON agent_view_template (tenant_id, created_at DESC, id DESC);
CREATE INDEX agent_view_template_user ON agent_view_template (tenant_id, user_id);
CREATE VIEW agent_view AS SELECT * FROM agent_view_template;

-- Every state change of every agent, in stream order (the auditors' timeline).
CREATE TABLE agent_state_view_template (
    agent_id   uuid        NOT NULL,
    seq        bigint      NOT NULL,
    tenant_id  uuid        NOT NULL,
    event_type text        NOT NULL,
    from_state text        NOT NULL,
    state      text        NOT NULL,
    reason     text,
    call_id    uuid,
    offer_id   uuid,
    at         timestamptz NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
CREATE VIEW agent_state_view AS SELECT * FROM agent_state_view_template;

-- One row per team (Team stream): settings and members (user id → role).
CREATE TABLE team_view_template (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    name       text        NOT NULL,
    settings   jsonb       NOT NULL,
    members    jsonb       NOT NULL DEFAULT '{}',
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX team_view_template_tenant ON team_view_template (tenant_id, created_at DESC, id DESC);
CREATE VIEW team_view AS SELECT * FROM team_view_template;

-- One row per queue (Queue stream): its settings, members included.
CREATE TABLE queue_view_template (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    name       text        NOT NULL,
    settings   jsonb       NOT NULL,
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX queue_view_template_tenant ON queue_view_template (tenant_id, created_at DESC, id DESC);
CREATE VIEW queue_view AS SELECT * FROM queue_view_template;

-- One row per routing rule (RoutingRule stream) at its current version.
CREATE TABLE routing_rule_view_template (
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    name         text        NOT NULL,
    priority     integer     NOT NULL,
    enabled      boolean     NOT NULL,
    rule_version integer     NOT NULL,
    settings     jsonb       NOT NULL,
    version      bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX routing_rule_view_template_tenant ON routing_rule_view_template (tenant_id, created_at DESC, id DESC);
CREATE VIEW routing_rule_view AS SELECT * FROM routing_rule_view_template;
