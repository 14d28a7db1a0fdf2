-- Reports of whole months. docs/ledger-schema.md describes the tables.
--
-- A report of whole months reads ledger_monthly by (cluster, month). With
-- the value columns carried in the primary key's index (INCLUDE), it is
-- answered from the index alone — an index-only scan — for the months
-- whose pages VACUUM has marked all-visible, which is every month that has
-- ended. The key itself is unchanged.
ALTER TABLE ledger_monthly
    DROP CONSTRAINT ledger_monthly_pkey,
    ADD CONSTRAINT ledger_monthly_pkey
        PRIMARY KEY (cluster, month, project, user_name, namespace, class, model, profile, site)
        INCLUDE (allocated_milli_gpu_seconds, device_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds,
                 energy_millijoules, fpga_seconds);

-- The month's rows by project alone: the sums of its ledger_monthly rows of
-- each project, rewritten with them. A report of whole months by project
-- (or of their total), without billing weights, reads one row per project
-- here instead of one per ledger key.
CREATE TABLE ledger_monthly_project (
    cluster                     text        NOT NULL,
    month                       timestamptz NOT NULL,
    project                     text        NOT NULL,
    allocated_milli_gpu_seconds bigint      NOT NULL,
    device_seconds              bigint      NOT NULL,
    used_milli_gpu_seconds      bigint      NOT NULL,
    idle_milli_gpu_seconds      bigint      NOT NULL,
    energy_millijoules          bigint      NOT NULL,
    fpga_seconds                bigint      NOT NULL,
    PRIMARY KEY (cluster, month, project)
        INCLUDE (allocated_milli_gpu_seconds, device_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds,
                 energy_millijoules, fpga_seconds)
);

-- Existing ledgers: the months already rolled up.
INSERT INTO ledger_monthly_project
SELECT cluster, month, project,
    sum(allocated_milli_gpu_seconds)::bigint, sum(device_seconds)::bigint, sum(used_milli_gpu_seconds)::bigint,
    sum(idle_milli_gpu_seconds)::bigint, sum(energy_millijoules)::bigint, sum(fpga_seconds)::bigint
FROM ledger_monthly
GROUP BY cluster, month, project;
