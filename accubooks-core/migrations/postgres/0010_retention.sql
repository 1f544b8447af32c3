-- Stored answers expire (contract section 11, issue 21): finished jobs,
-- report results and idempotency answers are purged after RETENTION_DAYS
-- by a background task, in bounded batches; and an organization's stored
-- report results are bounded by REPORT_STORAGE_PER_ORGANIZATION_BYTES.

-- The size of a stored result (bytes of its text), so the quota is one
-- indexed sum rather than a read of every result; and when the result was
-- dropped, so its report job answers 410 REPORT_EXPIRED for one more
-- retention period before the report job itself is forgotten.
ALTER TABLE report_jobs ADD COLUMN result_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_jobs ADD COLUMN expired_ms BIGINT;

-- The purge runs in worker transactions (`accubooks.worker`), across
-- organizations: it may read, empty and delete report jobs and read and
-- delete idempotency answers. It never inserts, so no INSERT policy.
CREATE POLICY worker_read ON report_jobs FOR SELECT
    USING (current_setting('accubooks.worker', true) = 'on');
CREATE POLICY worker_expire ON report_jobs FOR UPDATE
    USING (current_setting('accubooks.worker', true) = 'on');
CREATE POLICY worker_purge ON report_jobs FOR DELETE
    USING (current_setting('accubooks.worker', true) = 'on');
CREATE POLICY worker_read ON idempotency_keys FOR SELECT
    USING (current_setting('accubooks.worker', true) = 'on');
CREATE POLICY worker_purge ON idempotency_keys FOR DELETE
    USING (current_setting('accubooks.worker', true) = 'on');

-- Results stored before this migration count against the quota too. The
-- table is bound by row-level security, its owner included: this
-- transaction takes the worker's view to see every organization's rows.
SELECT set_config('accubooks.worker', 'on', true);
UPDATE report_jobs SET result_bytes = octet_length(result) WHERE result IS NOT NULL;

-- What each purge batch looks for, so a batch reads its rows rather than
-- the whole table.
CREATE INDEX jobs_finished ON jobs (updated_ms) WHERE status IN ('succeeded', 'dead');
CREATE INDEX report_jobs_by_job ON report_jobs (job_id);
CREATE INDEX report_jobs_expired ON report_jobs (expired_ms) WHERE expired_ms IS NOT NULL;
CREATE INDEX report_jobs_stored ON report_jobs (organization_id, result_bytes) WHERE result_bytes > 0;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
