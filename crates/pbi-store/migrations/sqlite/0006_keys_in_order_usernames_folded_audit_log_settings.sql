-- Application keys in the order entered, user names unique whatever their case, the audit log, settings.
ALTER TABLE registration_secrets ADD COLUMN entered BIGINT NOT NULL DEFAULT 0;
UPDATE registration_secrets SET entered = (SELECT COUNT(*) FROM registration_secrets o WHERE o.registration_id = registration_secrets.registration_id AND (o.expires_at < registration_secrets.expires_at OR (o.expires_at = registration_secrets.expires_at AND o.id <= registration_secrets.id)));
UPDATE users SET username = username || '-' || substr(id, 1, 8) WHERE EXISTS (SELECT 1 FROM users o WHERE lower(o.username) = lower(users.username) AND (o.created_at < users.created_at OR (o.created_at = users.created_at AND o.id < users.id)));
CREATE UNIQUE INDEX users_username_folded ON users (lower(username));
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT
);
CREATE INDEX audit_log_seq ON audit_log (seq, id);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
