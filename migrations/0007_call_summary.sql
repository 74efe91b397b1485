-- What the call was about: the AI agent's summary at its end, or for the human it handed over to.
ALTER TABLE call_view_template ADD COLUMN summary text;
