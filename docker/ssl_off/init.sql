-- Roles and databases of the ssl_off setup (test passwords only).
SET password_encryption = 'scram-sha-256';
CREATE ROLE "app" LOGIN;
