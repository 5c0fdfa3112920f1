-- Roles and databases of the hostssl_only setup (test passwords only).
SET password_encryption = 'scram-sha-256';
CREATE ROLE "app" LOGIN;
SET password_encryption = 'scram-sha-256';
CREATE ROLE "scram" LOGIN PASSWORD 'scram-secret';
