-- 0001_core: the three data tables of the collector.
-- The runner substitutes the database name. Statements end with ';' at the end of a line.
-- Migrations are append-only: never edit this file once released; add 0002_*.sql instead.

CREATE TABLE IF NOT EXISTS {db}.samples
(
    ts          DateTime64(3, 'UTC')                 CODEC(DoubleDelta, ZSTD(1)),
    customer    LowCardinality(String),
    provider    LowCardinality(String),
    account     LowCardinality(String),
    target      LowCardinality(String),
    source      LowCardinality(String),
    metric      LowCardinality(String),
    labels      Map(LowCardinality(String), String)  CODEC(ZSTD(1)),
    value       Float64                              CODEC(Gorilla, ZSTD(1)),
    series_id   UInt64                               CODEC(ZSTD(1)),
    flags       UInt8                                CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (provider, metric, series_id, ts)
TTL toDateTime(ts) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {db}.gpu_samples
(
    ts                      DateTime64(3, 'UTC')   CODEC(DoubleDelta, ZSTD(1)),
    customer                LowCardinality(String),
    provider                LowCardinality(String),
    account                 LowCardinality(String),
    target                  LowCardinality(String),
    host                    LowCardinality(String),
    gpu_index               UInt16                 CODEC(ZSTD(1)),
    gpu_uuid                LowCardinality(String),
    gpu_model               LowCardinality(String),
    mig_instance            LowCardinality(String),
    mig_profile             LowCardinality(String),
    driver_version          LowCardinality(String),
    pci_bus_id              LowCardinality(String),
    namespace               LowCardinality(String),
    pod                     String                 CODEC(ZSTD(1)),
    container               LowCardinality(String),
    gpu_util_percent        Nullable(Float32)      CODEC(ZSTD(1)),
    mem_copy_util_percent   Nullable(Float32)      CODEC(ZSTD(1)),
    enc_util_percent        Nullable(Float32)      CODEC(ZSTD(1)),
    dec_util_percent        Nullable(Float32)      CODEC(ZSTD(1)),
    fb_used_mib             Nullable(Float64)      CODEC(ZSTD(1)),
    fb_free_mib             Nullable(Float64)      CODEC(ZSTD(1)),
    power_watts             Nullable(Float64)      CODEC(ZSTD(1)),
    gpu_temp_c              Nullable(Float32)      CODEC(ZSTD(1)),
    memory_temp_c           Nullable(Float32)      CODEC(ZSTD(1)),
    sm_clock_mhz            Nullable(Float32)      CODEC(ZSTD(1)),
    mem_clock_mhz           Nullable(Float32)      CODEC(ZSTD(1)),
    energy_mj               Nullable(Float64)      CODEC(ZSTD(1)),
    xid_last                Nullable(Float64)      CODEC(ZSTD(1)),
    pcie_replay_total       Nullable(Float64)      CODEC(ZSTD(1)),
    nvlink_bandwidth_total  Nullable(Float64)      CODEC(ZSTD(1)),
    prof_gr_engine_active   Nullable(Float64)      CODEC(ZSTD(1)),
    prof_sm_active          Nullable(Float64)      CODEC(ZSTD(1)),
    prof_sm_occupancy       Nullable(Float64)      CODEC(ZSTD(1)),
    prof_tensor_active      Nullable(Float64)      CODEC(ZSTD(1)),
    prof_dram_active        Nullable(Float64)      CODEC(ZSTD(1)),
    prof_fp64_active        Nullable(Float64)      CODEC(ZSTD(1)),
    prof_fp32_active        Nullable(Float64)      CODEC(ZSTD(1)),
    prof_fp16_active        Nullable(Float64)      CODEC(ZSTD(1)),
    prof_pcie_tx_bytes      Nullable(Float64)      CODEC(ZSTD(1)),
    prof_pcie_rx_bytes      Nullable(Float64)      CODEC(ZSTD(1)),
    prof_nvlink_tx_bytes    Nullable(Float64)      CODEC(ZSTD(1)),
    prof_nvlink_rx_bytes    Nullable(Float64)      CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (provider, customer, host, gpu_uuid, mig_instance, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {db}.scrape_log
(
    ts            DateTime64(3, 'UTC')   CODEC(DoubleDelta, ZSTD(1)),
    customer      LowCardinality(String),
    provider      LowCardinality(String),
    account       LowCardinality(String),
    target        LowCardinality(String),
    kind          LowCardinality(String),
    url           String                 CODEC(ZSTD(1)),
    status        LowCardinality(String),
    error         String                 CODEC(ZSTD(1)),
    error_reason  LowCardinality(String),
    duration_ms   Float32                CODEC(ZSTD(1)),
    samples       UInt32                 CODEC(ZSTD(1)),
    bytes         UInt64                 CODEC(ZSTD(1)),
    dropped       UInt32                 CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (provider, customer, target, ts)
TTL toDateTime(ts) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
