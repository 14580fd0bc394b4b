-- Tenant-scoped job queries filter on the organization id stored in the job's
-- arguments and page by id; this expression index serves both. It is an index
-- of our own on Procrastinate's table, which changes none of its objects.
CREATE INDEX howdah_jobs_organization_id_idx
    ON procrastinate_jobs ((args ->> 'organization_id'), id);
