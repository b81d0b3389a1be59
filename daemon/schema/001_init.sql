-- cartd schema, version 1.
--
-- Owner ids are the cart key's owner: "user-<id>" or "guest-<session>",
-- so the seed's UUID user_id becomes TEXT.

-- The seed's snapshot table: one row per cart line, as Redis has it.
CREATE TABLE cart_snapshots (
    user_id       TEXT         NOT NULL,
    sku_id        VARCHAR(64)  NOT NULL,
    quantity      INT          NOT NULL,
    price_at_add  DECIMAL(12,2),
    seller_id     VARCHAR(64),
    added_at      TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ  DEFAULT NOW(),
    PRIMARY KEY (user_id, sku_id)
);

-- One row per cart: what a snapshot of lines cannot say. The version
-- orders snapshots; last_activity_at gives restore its TTLs.
CREATE TABLE carts (
    user_id           TEXT         PRIMARY KEY,
    version           BIGINT       NOT NULL DEFAULT 0,
    item_count        BIGINT       NOT NULL DEFAULT 0,
    total_value       DECIMAL(14,2) NOT NULL DEFAULT 0,
    last_activity_at  TIMESTAMPTZ,
    last_checkout_at  TIMESTAMPTZ,
    events_applied    BIGINT       NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ  NOT NULL DEFAULT NOW()
);

-- Dedup of at-least-once delivery; rows older than the retention (7 days
-- by default, Kafka's own retention) are purged.
CREATE TABLE processed_events (
    event_id      TEXT         PRIMARY KEY,
    processed_at  TIMESTAMPTZ  NOT NULL DEFAULT NOW()
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

-- One row per idle episode of a cart (an episode ends with new activity).
CREATE TABLE cart_abandonments (
    user_id           TEXT         PRIMARY KEY,
    last_activity_at  TIMESTAMPTZ  NOT NULL,
    abandoned_at      TIMESTAMPTZ  NOT NULL,
    total_value       DECIMAL(14,2) NOT NULL,
    steps_done        INT          NOT NULL DEFAULT 0,   -- of 1h, 4h, 24h, 72h
    last_step         TEXT,
    suppressed        TEXT                               -- why the last step was not sent
);

-- Users who opted out of marketing: no reminders.
CREATE TABLE marketing_opt_outs (
    user_id       TEXT         PRIMARY KEY,
    opted_out_at  TIMESTAMPTZ  NOT NULL DEFAULT NOW()
);
