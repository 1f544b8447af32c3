-- The claim of the database transport (issue 27) reads only the jobs that
-- may still run: pending, queued (relayed to Redis), running (a lease that
-- may pass) and failed (to be retried). Succeeded and dead jobs, which the
-- table keeps for RETENTION_DAYS, are in neither index, so a claim costs the
-- same however much history the table holds. A claim takes a queue's jobs
-- in the order they fell due (run_after_ms, then id), or per organization
-- in that order to give each organization its turn (issue 14). Ordering by
-- a column the primary key lacks keeps the planner from walking jobs_pkey
-- past every finished row, which it would otherwise pick for ORDER BY id.
CREATE INDEX jobs_claim ON jobs (queue, run_after_ms, id)
    WHERE status IN ('pending', 'queued', 'running', 'failed');
CREATE INDEX jobs_claim_by_organization ON jobs (queue, organization_id, run_after_ms, id)
    WHERE status IN ('pending', 'queued', 'running', 'failed');
-- Superseded by jobs_claim_by_organization (it also held dead jobs).
DROP INDEX jobs_open_by_organization;
