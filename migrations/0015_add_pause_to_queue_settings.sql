-- A paused queue keeps its jobs waiting: workers take none of them until it is resumed.
-- Who paused it, and when, is shown to operators ("why is this job not running?").
ALTER TABLE queue_settings
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_by text;
