-- A call's disposition set by hand (issue 14): the agent's notes, who said it and when.
ALTER TABLE call_view_template ADD COLUMN disposition_notes text;
ALTER TABLE call_view_template ADD COLUMN disposition_agent_id uuid;
ALTER TABLE call_view_template ADD COLUMN disposition_at timestamptz;
