-- A person with several memberships chooses which organization a session acts for; the
-- choice lives with the session on the server, so it ends with it. NULL: the default
-- membership (admin first, then the lowest organization id).
ALTER TABLE user_sessions
    ADD COLUMN organization_id bigint REFERENCES organizations ON DELETE SET NULL;
