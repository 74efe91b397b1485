-- Timers of process managers: "act at T" as data, so that it survives restarts and is acted on
-- by whichever instance runs the manager. A manager sets and cancels its timers in the same
-- transaction that moves its checkpoint; the timer runner fires due ones and deletes them.
CREATE TABLE process_timers (
    manager    text        NOT NULL,
    timer_key  text        NOT NULL,
    due_at     timestamptz NOT NULL,
    tenant_id  text        NOT NULL,
    payload    jsonb       NOT NULL DEFAULT '{}',
    -- The event that set it (causation of what it issues).
    set_by     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (manager, timer_key)
);
CREATE INDEX process_timers_due ON process_timers (manager, due_at);
