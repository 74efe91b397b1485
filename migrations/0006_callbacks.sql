-- A callback the person asked for, per campaign and contact: the dialer calls them then.
ALTER TABLE campaign_contact_view_template
    ADD COLUMN callback_at   timestamptz,
    ADD COLUMN callback_note text;
