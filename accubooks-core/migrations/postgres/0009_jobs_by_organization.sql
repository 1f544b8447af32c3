-- Open jobs by queue and organization: the claim of the database transport
-- asks for the least and greatest organization with open jobs on a queue
-- (two probes of this index) to know whether organizations must take
-- turns (issue 21: one organization's backlog must not delay another's).
CREATE INDEX jobs_open_by_organization ON jobs (queue, organization_id)
    WHERE status <> 'succeeded';
