-- People, their roles in organizations, their login sessions, and API tokens.
-- A membership with role 'admin' makes its user a platform operator who sees
-- every organization; 'operator' acts on its organization's jobs; 'viewer' reads.
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    organization_id bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, organization_id)
);
CREATE INDEX memberships_organization_id_idx ON memberships (organization_id);

-- A login is a row here; the cookie carries its id, so logging out (or a new
-- password) ends it on the server, not just in the browser.
CREATE TABLE user_sessions (
    id_hash text PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX user_sessions_user_id_idx ON user_sessions (user_id);

-- Only a hash of each secret is kept; the prefix lets people tell tokens apart.
-- A token without an organization is a platform token (the /api/admin routes).
CREATE TABLE api_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint REFERENCES organizations ON DELETE CASCADE,
    name text NOT NULL DEFAULT '',
    prefix text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_organization_id_idx ON api_tokens (organization_id);
