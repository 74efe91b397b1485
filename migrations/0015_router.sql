-- The router (issue 13): calls waiting in queues, the round-robin pointer, and what the
-- routing strategies read of agents (last call, calls and occupancy today).

-- One row per visit of a call to a queue (QueuedCall stream), its decisions and how it left.
CREATE TABLE queue_entry_view_template (
    call_id          uuid        NOT NULL,
    visit            integer     NOT NULL,
    tenant_id        uuid        NOT NULL,
    queue_id         uuid        NOT NULL,
    status           text        NOT NULL,
    priority         integer     NOT NULL,
    vip              boolean     NOT NULL,
    call             jsonb       NOT NULL,
    arrived_at       timestamptz NOT NULL,
    overflow_at      timestamptz,
    decisions        integer     NOT NULL DEFAULT 0,
    last_why_none    text,
    offer_id         uuid,
    agent_id         uuid,
    offered_at       timestamptz,
    offer_expires_at timestamptz,
    turned_down      jsonb       NOT NULL DEFAULT '[]',
    left_reason      text,
    left_at          timestamptz,
    waited_ms        bigint,
    version          bigint      NOT NULL,
    PRIMARY KEY (call_id, visit)
);
CREATE INDEX queue_entry_view_template_waiting ON queue_entry_view_template (queue_id, arrived_at)
    WHERE status IN ('waiting', 'offered');
CREATE INDEX queue_entry_view_template_offer ON queue_entry_view_template (offer_id) WHERE offer_id IS NOT NULL;
CREATE INDEX queue_entry_view_template_agent ON queue_entry_view_template (agent_id) WHERE status = 'offered';
CREATE VIEW queue_entry_view AS SELECT * FROM queue_entry_view_template;

-- The member index of the agent a queue's last round-robin decision offered.
CREATE TABLE queue_pointer_view_template (
    queue_id   uuid        PRIMARY KEY,
    rr_pointer integer     NOT NULL,
    at         timestamptz NOT NULL
);
CREATE VIEW queue_pointer_view AS SELECT * FROM queue_pointer_view_template;

-- What least_busy, longest_idle and the occupancy strategies read (UTC day).
ALTER TABLE agent_view_template
    ADD COLUMN last_call_ended_at timestamptz,
    ADD COLUMN day                date,
    ADD COLUMN calls_today        integer NOT NULL DEFAULT 0,
    ADD COLUMN handle_ms_today    bigint  NOT NULL DEFAULT 0,
    ADD COLUMN staffed_ms_today   bigint  NOT NULL DEFAULT 0;
-- (agent_view_v2 is built from the template with them; the view switches when it is caught up.)
