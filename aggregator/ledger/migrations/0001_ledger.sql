-- The ledger: audit tables fed by windows (intervals, window_usage,
-- window_energy, window_capacity, watermarks), the hourly rows computed
-- from them (ledger_hourly, capacity_hourly), their day and month rollups,
-- closed months and the adjustments journal. docs/ledger-schema.md
-- describes every table, its key and its units.
--
-- Times taken from the exporters (allocation starts and ends, window
-- bounds, the watermark) are whole Unix seconds (bigint, suffix _unix), so
-- that overlaps are exact integer arithmetic. The ledger's own time keys
-- (hour, day, month) are timestamptz at the start of the UTC hour, day or
-- month. Quantities are bigint: milli-GPU-seconds, seconds, millijoules.

CREATE TABLE intervals (
    cluster           text    NOT NULL,
    node              text    NOT NULL,
    device            text    NOT NULL,
    pod_uid           text    NOT NULL,
    resource          text    NOT NULL,
    class             text    NOT NULL CHECK (class IN ('gpu', 'mig', 'shared', 'fpga', 'offload')),
    gpu_uuid          text    NOT NULL,
    model             text    NOT NULL,
    profile           text    NOT NULL,
    namespace         text    NOT NULL,
    pod               text    NOT NULL,
    user_name         text    NOT NULL,
    project           text    NOT NULL,
    queue             text    NOT NULL,
    site              text    NOT NULL,
    start_unix        bigint  NOT NULL,
    end_unix          bigint, -- NULL while open
    end_exact         boolean NOT NULL,
    last_seen_unix_ms bigint  NOT NULL,
    weight_milli      bigint  NOT NULL CHECK (weight_milli >= 0),
    devices           bigint  NOT NULL CHECK (devices >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, node, device, pod_uid, resource),
    CHECK (end_unix >= start_unix)
);
-- The hours an interval overlaps are found through its extent; an open
-- interval's extent has no upper bound.
CREATE INDEX intervals_extent ON intervals USING gist (int8range(start_unix, end_unix));

CREATE TABLE window_usage (
    cluster                text   NOT NULL,
    window_start_unix      bigint NOT NULL,
    window_end_unix        bigint NOT NULL,
    node                   text   NOT NULL,
    device                 text   NOT NULL,
    pod_uid                text   NOT NULL,
    resource               text   NOT NULL,
    used_milli_gpu_seconds bigint NOT NULL,
    idle_milli_gpu_seconds bigint NOT NULL,
    energy_millijoules     bigint NOT NULL,
    PRIMARY KEY (cluster, window_start_unix, node, device, pod_uid, resource)
);

CREATE TABLE window_energy (
    cluster            text   NOT NULL,
    window_start_unix  bigint NOT NULL,
    window_end_unix    bigint NOT NULL,
    node               text   NOT NULL,
    gpu_uuid           text   NOT NULL,
    model              text   NOT NULL,
    energy_millijoules bigint NOT NULL,
    PRIMARY KEY (cluster, window_start_unix, node, gpu_uuid)
);

CREATE TABLE window_capacity (
    cluster           text   NOT NULL,
    window_start_unix bigint NOT NULL,
    window_end_unix   bigint NOT NULL,
    node              text   NOT NULL,
    device            text   NOT NULL,
    class             text   NOT NULL CHECK (class IN ('gpu', 'fpga')),
    model             text   NOT NULL,
    seconds           bigint NOT NULL CHECK (seconds >= 0),
    PRIMARY KEY (cluster, window_start_unix, node, device)
);

CREATE TABLE watermarks (
    cluster        text   PRIMARY KEY,
    watermark_unix bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_hourly (
    cluster                     text        NOT NULL,
    hour                        timestamptz NOT NULL,
    project                     text        NOT NULL,
    user_name                   text        NOT NULL,
    namespace                   text        NOT NULL,
    class                       text        NOT NULL,
    model                       text        NOT NULL,
    profile                     text        NOT NULL,
    site                        text        NOT NULL,
    allocated_milli_gpu_seconds bigint      NOT NULL,
    device_seconds              bigint      NOT NULL,
    used_milli_gpu_seconds      bigint      NOT NULL,
    idle_milli_gpu_seconds      bigint      NOT NULL,
    energy_millijoules          bigint      NOT NULL,
    fpga_seconds                bigint      NOT NULL,
    PRIMARY KEY (cluster, hour, project, user_name, namespace, class, model, profile, site)
);

CREATE TABLE ledger_daily (
    cluster                     text        NOT NULL,
    day                         timestamptz NOT NULL,
    project                     text        NOT NULL,
    user_name                   text        NOT NULL,
    namespace                   text        NOT NULL,
    class                       text        NOT NULL,
    model                       text        NOT NULL,
    profile                     text        NOT NULL,
    site                        text        NOT NULL,
    allocated_milli_gpu_seconds bigint      NOT NULL,
    device_seconds              bigint      NOT NULL,
    used_milli_gpu_seconds      bigint      NOT NULL,
    idle_milli_gpu_seconds      bigint      NOT NULL,
    energy_millijoules          bigint      NOT NULL,
    fpga_seconds                bigint      NOT NULL,
    PRIMARY KEY (cluster, day, project, user_name, namespace, class, model, profile, site)
);

CREATE TABLE ledger_monthly (
    cluster                     text        NOT NULL,
    month                       timestamptz NOT NULL,
    project                     text        NOT NULL,
    user_name                   text        NOT NULL,
    namespace                   text        NOT NULL,
    class                       text        NOT NULL,
    model                       text        NOT NULL,
    profile                     text        NOT NULL,
    site                        text        NOT NULL,
    allocated_milli_gpu_seconds bigint      NOT NULL,
    device_seconds              bigint      NOT NULL,
    used_milli_gpu_seconds      bigint      NOT NULL,
    idle_milli_gpu_seconds      bigint      NOT NULL,
    energy_millijoules          bigint      NOT NULL,
    fpga_seconds                bigint      NOT NULL,
    PRIMARY KEY (cluster, month, project, user_name, namespace, class, model, profile, site)
);

CREATE TABLE capacity_hourly (
    cluster                       text        NOT NULL,
    hour                          timestamptz NOT NULL,
    class                         text        NOT NULL CHECK (class IN ('gpu', 'fpga')),
    model                         text        NOT NULL,
    device_seconds                bigint      NOT NULL,
    capacity_milli_gpu_seconds    bigint      NOT NULL,
    allocated_milli_gpu_seconds   bigint      NOT NULL,
    unallocated_milli_gpu_seconds bigint      NOT NULL,
    allocated_fpga_seconds        bigint      NOT NULL,
    unallocated_fpga_seconds      bigint      NOT NULL,
    energy_millijoules            bigint      NOT NULL,
    PRIMARY KEY (cluster, hour, class, model)
);

CREATE TABLE closed_months (
    cluster        text        NOT NULL,
    month          timestamptz NOT NULL,
    watermark_unix bigint      NOT NULL,
    closed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, month)
);

CREATE TABLE ledger_adjustments (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster                     text        NOT NULL,
    month                       timestamptz NOT NULL, -- the closed month corrected
    hour                        timestamptz NOT NULL,
    project                     text        NOT NULL,
    user_name                   text        NOT NULL,
    namespace                   text        NOT NULL,
    class                       text        NOT NULL,
    model                       text        NOT NULL,
    profile                     text        NOT NULL,
    site                        text        NOT NULL,
    allocated_milli_gpu_seconds bigint      NOT NULL,
    device_seconds              bigint      NOT NULL,
    used_milli_gpu_seconds      bigint      NOT NULL,
    idle_milli_gpu_seconds      bigint      NOT NULL,
    energy_millijoules          bigint      NOT NULL,
    fpga_seconds                bigint      NOT NULL,
    window_start_unix           bigint      NOT NULL, -- the window whose data made the correction
    window_end_unix             bigint      NOT NULL,
    recorded_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_adjustments_hour ON ledger_adjustments (cluster, hour);
