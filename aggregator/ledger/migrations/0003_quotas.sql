-- Kueue ClusterQueue nominal quotas, kept as a history so that a report
-- over any past range compares usage with the quota in force at the time.
-- docs/ledger-schema.md and docs/api.md describe the table and how the
-- accounting API joins it with the ledger.
--
-- A row says: from valid_from on, until the next row of the same cluster,
-- queue and resource (or for ever when there is none), the ClusterQueue
-- `queue` had a nominal quota of nominal_milli thousandths of `resource`
-- (summed over the queue's ResourceFlavors), and its usage is accounted
-- to the ledger project `project` (with the default attribution rules, the
-- ClusterQueue's own name).

CREATE TABLE queue_quotas (
    cluster       text        NOT NULL,
    queue         text        NOT NULL, -- the Kueue ClusterQueue
    resource      text        NOT NULL, -- Kubernetes resource name: nvidia.com/gpu, nvidia.com/mig-1g.10gb, ...
    valid_from    timestamptz NOT NULL,
    project       text        NOT NULL,
    nominal_milli bigint      NOT NULL CHECK (nominal_milli >= 0),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, queue, resource, valid_from)
);
CREATE INDEX queue_quotas_project ON queue_quotas (cluster, project);
