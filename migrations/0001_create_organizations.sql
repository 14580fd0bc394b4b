-- Every job belongs to one organization (tenant); this is the table they
-- reference. Names are unique regardless of case.
CREATE TABLE organizations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX organizations_name_key ON organizations (lower(name));
