-- IVR flow analytics (issue 15): one row per node a call entered, from the call's IvrStepTaken
-- events. Projection `ivr_visit_view` owns it (see 0004_campaigns.sql for the template + view
-- pattern).
CREATE TABLE ivr_visit_view_template (
    call_id     uuid        NOT NULL,
    -- The call's visit number (1 = the entry node).
    visit       integer     NOT NULL,
    tenant_id   uuid        NOT NULL,
    flow_id     uuid        NOT NULL,
    version     integer     NOT NULL,
    node_id     text        NOT NULL,
    node_type   text        NOT NULL,
    entered_at  timestamptz NOT NULL,
    -- When the call went on to the next node or the flow ended (null: still there).
    left_at     timestamptz,
    -- The exit it left by (`option:1`, `next`, `true`, `timeout`, …).
    branch      text,
    -- The flow ended here: completed | transferred | voicemail_left | caller_hung_up | error |
    -- visit_limit.
    end_reason  text,
    PRIMARY KEY (call_id, visit)
);
CREATE INDEX ivr_visit_view_template_flow ON ivr_visit_view_template (flow_id, tenant_id, entered_at);
CREATE VIEW ivr_visit_view AS SELECT * FROM ivr_visit_view_template;
