-- The write model of the CQRS example: an orders table in PostgreSQL.
--
-- The postgres source polls it in timestamp+incrementing mode, so every row needs a strictly
-- increasing id and an updated_at that changes on every update (the trigger below sees to
-- that, with the database's clock).

CREATE TABLE IF NOT EXISTS orders (
    id          bigserial     PRIMARY KEY,
    customer    text          NOT NULL,
    status      text          NOT NULL DEFAULT 'new',
    total       numeric(10,2) NOT NULL,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT clock_timestamp()
);

CREATE OR REPLACE FUNCTION orders_touch_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS orders_touch_updated_at ON orders;
CREATE TRIGGER orders_touch_updated_at
    BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_touch_updated_at();

INSERT INTO orders (customer, status, total) VALUES
    ('ada',   'new',     42.50),
    ('grace', 'paid',    17.00),
    ('linus', 'shipped', 99.95);
