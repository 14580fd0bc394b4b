-- The audit log page filters by actor and by action, newest first, 50 at a time. Each
-- filter gets an index ending in id, so a page is one short backward index scan
-- however long the log grows; the (action, id) index also lists the actions on record
-- with one probe per action. text_pattern_ops lets the actor index serve a prefix
-- (LIKE 'abc%') in any collation, as well as an exact match. An organization's reader
-- is offered the actions on record for that organization alone, one probe per action of
-- the (organization_id, action) index.
CREATE INDEX audit_log_actor_label_id_idx ON audit_log (actor_label text_pattern_ops, id);
CREATE INDEX audit_log_action_id_idx ON audit_log (action, id);
CREATE INDEX audit_log_organization_action_idx ON audit_log (organization_id, action);
