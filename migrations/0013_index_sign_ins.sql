-- The sign-in throttle reads failed sign-ins by account and by address, and whether an
-- account signed in from an address before. The index on failures by time alone made it
-- read every failure in its window, which an attack makes long.
CREATE INDEX audit_log_login_failures_by_account_idx
    ON audit_log (target_id, at) WHERE action = 'login.failed';
CREATE INDEX audit_log_login_failures_by_address_idx
    ON audit_log (ip, at) WHERE action = 'login.failed';
CREATE INDEX audit_log_sign_ins_idx
    ON audit_log (target_id, ip, at) WHERE action = 'login.succeeded';
DROP INDEX audit_log_login_failures_idx;
