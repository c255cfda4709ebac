-- The write model of the CDC example: a plain table, no triggers. Deletes are real DELETEs;
-- the CDC source sees them in the write-ahead log.
CREATE TABLE IF NOT EXISTS orders (
    id          bigserial PRIMARY KEY,
    customer    text        NOT NULL,
    status      text        NOT NULL DEFAULT 'new',
    total       numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO orders (customer, status, total) VALUES
    ('ada', 'new', 12.50),
    ('grace', 'paid', 99.00),
    ('linus', 'shipped', 7.25);
