-- The write model of the CQRS example: an orders table in PostgreSQL.
--
-- The postgres source polls it in timestamp+incrementing mode, so every row needs a strictly
-- increasing id and an updated_at that changes on every update (the first trigger below sees
-- to that, with the database's clock).
--
-- Deletes: a polling source cannot see a row that is gone, so a DELETE is turned into an
-- UPDATE that sets deleted_at (the second trigger). The source's soft.delete.column.name
-- option sends such a row as a tombstone, and the Elasticsearch sink deletes its document.
-- The application keeps writing plain DELETEs.

-- Quiet "does not exist, skipping" notices when the file is run the first time.
SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS orders (
    id          bigserial     PRIMARY KEY,
    customer    text          NOT NULL,
    status      text          NOT NULL DEFAULT 'new',
    total       numeric(10,2) NOT NULL,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT clock_timestamp(),
    -- Set when the row is deleted; the row stays so the change can be read.
    deleted_at  timestamptz
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

-- DELETE FROM orders ... marks the rows deleted instead of removing them, and cancels the
-- delete itself (RETURN NULL). Note that the statement then reports "DELETE 0".
--
-- To really remove rows once the read model has dropped them (the source has read their
-- deletion), purge in a transaction that says so:
--   BEGIN; SET LOCAL orders.purge = 'on';
--   DELETE FROM orders WHERE deleted_at < now() - interval '30 days';
--   COMMIT;
CREATE OR REPLACE FUNCTION orders_soft_delete() RETURNS trigger AS $$
BEGIN
    IF current_setting('orders.purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    UPDATE orders
       SET deleted_at = clock_timestamp(), updated_at = clock_timestamp()
     WHERE id = OLD.id AND deleted_at IS NULL;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS orders_soft_delete ON orders;
CREATE TRIGGER orders_soft_delete
    BEFORE DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_soft_delete();

-- What the application reads: the orders that are not deleted.
CREATE OR REPLACE VIEW live_orders AS
    SELECT id, customer, status, total, created_at, updated_at
      FROM orders
     WHERE deleted_at IS NULL;

INSERT INTO orders (customer, status, total) VALUES
    ('ada',   'new',     42.50),
    ('grace', 'paid',    17.00),
    ('linus', 'shipped', 99.95);
