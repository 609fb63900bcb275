-- 0002_providers: what provider APIs say about machines and money, and the cost-per-GPU view.
-- The runner substitutes the database name. Statements end with ';' at the end of a line.
-- Latest-wins tables use ReplacingMergeTree(version): read them with FINAL (or argMax) for the
-- current state; background merges converge duplicates eventually.

CREATE TABLE IF NOT EXISTS {db}.instances
(
    observed_at    DateTime64(3, 'UTC')   CODEC(DoubleDelta, ZSTD(1)),
    customer       LowCardinality(String),
    provider       LowCardinality(String),
    account        LowCardinality(String),
    instance_id    String,
    name           String                 CODEC(ZSTD(1)),
    region         LowCardinality(String),
    zone           LowCardinality(String),
    instance_type  LowCardinality(String),
    status         LowCardinality(String),
    gpu_model      LowCardinality(String),
    gpu_count      UInt16,
    vcpus          Nullable(UInt32),
    memory_mib     Nullable(UInt64),
    hourly_price   Nullable(Decimal(18, 6)),
    currency       LowCardinality(String),
    price_source   LowCardinality(String),
    created_at     Nullable(DateTime64(3, 'UTC')),
    host           String,
    ip             String,
    labels         Map(LowCardinality(String), String)  CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (provider, account, instance_id);

CREATE TABLE IF NOT EXISTS {db}.billing
(
    observed_at           DateTime64(3, 'UTC')   CODEC(DoubleDelta, ZSTD(1)),
    customer              LowCardinality(String),
    provider              LowCardinality(String),
    account               LowCardinality(String),
    line_id               String,
    charge_category       LowCardinality(String),
    charge_description    String                 CODEC(ZSTD(1)),
    billing_period_start  DateTime64(3, 'UTC'),
    billing_period_end    DateTime64(3, 'UTC'),
    charge_period_start   DateTime64(3, 'UTC'),
    charge_period_end     DateTime64(3, 'UTC'),
    billed_cost           Decimal(18, 6),
    billing_currency      LowCardinality(String),
    resource_id           String,
    note                  String                 CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (provider, account, line_id);

CREATE TABLE IF NOT EXISTS {db}.provider_metadata
(
    last_attempt   DateTime64(3, 'UTC'),
    customer       LowCardinality(String),
    provider       LowCardinality(String),
    account        LowCardinality(String),
    adapter        LowCardinality(String),
    display_name   String,
    capabilities   Array(LowCardinality(String)),
    base_url       String,
    job            LowCardinality(String),
    last_status    LowCardinality(String),
    last_error     String,
    last_success   Nullable(DateTime64(3, 'UTC')),
    instances      UInt32,
    billing_lines  UInt32,
    duration_ms    Float32
)
ENGINE = ReplacingMergeTree(last_attempt)
ORDER BY (provider, account, job);

-- Cost next to utilization, per provider/account/hour (and currency). A GPU row links to the
-- instance whose ``host`` equals gpu_samples.host (same provider and account; docs/schema.md lists
-- what ``host`` is per provider). Observed time of a GPU in an hour = span of its samples plus one
-- mean sampling step (capped at 1 h); its price share = instance hourly price / GPUs of the
-- instance (the larger of the API's GPU count and the GPUs seen on the host in that hour: some APIs
-- give no count, and a GPU whose exporter is down still costs). idle_cost = cost x (1 - util/100).
CREATE VIEW IF NOT EXISTS {db}.gpu_cost_hourly AS
SELECT
    provider,
    account,
    hour,
    any(customer) AS customer,
    currency,
    sum(observed_s) / 3600 AS gpu_hours,
    sumIf(util * observed_s, has_util) / nullIf(sumIf(observed_s, has_util), 0) AS mean_util_percent,
    sum(gpu_price * observed_s / 3600) AS cost,
    sumIf(gpu_price * observed_s / 3600 * (1 - util / 100), has_util) AS idle_cost,
    sumIf(observed_s, NOT priced) / 3600 AS unpriced_gpu_hours
FROM
(
    SELECT
        g.provider AS provider,
        g.account AS account,
        g.hour AS hour,
        g.customer AS customer,
        g.observed_s AS observed_s,
        g.util AS util,
        g.has_util AS has_util,
        p.price IS NOT NULL AS priced,
        ifNull(p.currency, '') AS currency,
        toFloat64(greatest(ifNull(p.gpu_count, 0),
           count() OVER (PARTITION BY g.provider, g.account, g.host, g.hour))) AS gpus_on_host,
        ifNull(toFloat64(p.price), 0) / gpus_on_host AS gpu_price
    FROM
    (
        SELECT
            provider,
            account,
            host,
            toStartOfHour(ts) AS hour,
            gpu_index,
            gpu_uuid,
            any(customer) AS customer,
            count() AS n,
            (toUnixTimestamp64Milli(max(ts)) - toUnixTimestamp64Milli(min(ts))) / 1000 AS span_s,
            least(3600, span_s + if(n > 1, span_s / (n - 1), 0)) AS observed_s,
            ifNull(avg(gpu_util_percent), 0) AS util,
            countIf(gpu_util_percent IS NOT NULL) > 0 AS has_util
        FROM {db}.gpu_samples
        GROUP BY provider, account, host, hour, gpu_index, gpu_uuid
    ) AS g
    LEFT JOIN
    (
        SELECT
            provider,
            account,
            host,
            argMax(hourly_price, observed_at) AS price,
            argMax(currency, observed_at) AS currency,
            argMax(gpu_count, observed_at) AS gpu_count
        FROM {db}.instances
        WHERE host != ''
        GROUP BY provider, account, host
    ) AS p ON g.provider = p.provider AND g.account = p.account AND g.host = p.host
    SETTINGS join_use_nulls = 1
)
GROUP BY provider, account, hour, currency;
