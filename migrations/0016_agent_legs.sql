-- The carrier legs dialed to agents for offers (issue 14): written before the carrier is asked,
-- so a replayed reservation never dials an agent twice; the leg's id and how it went.
CREATE TABLE agent_legs (
    offer_id    uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    agent_id    uuid        NOT NULL,
    call_id     uuid        NOT NULL,
    provider    text        NOT NULL,
    leg_id      text,
    status      text        NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_legs_leg ON agent_legs (leg_id) WHERE leg_id IS NOT NULL;
