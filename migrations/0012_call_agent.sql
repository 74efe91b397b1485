-- The voice agent (AI session) on a call: which provider, model and voice, since when.
ALTER TABLE call_view_template ADD COLUMN ai_provider text;
ALTER TABLE call_view_template ADD COLUMN ai_model text;
ALTER TABLE call_view_template ADD COLUMN ai_voice text;
ALTER TABLE call_view_template ADD COLUMN agent_connected_at timestamptz;
-- Live AI sessions of a company (GET /api/v1/sessions).
CREATE INDEX call_view_template_live_sessions ON call_view_template (tenant_id, agent_connected_at DESC)
    WHERE agent_connected_at IS NOT NULL AND ended_at IS NULL;
-- Calls not ended yet (the dashboard's live figures).
CREATE INDEX call_view_template_live ON call_view_template (tenant_id) WHERE ended_at IS NULL;
