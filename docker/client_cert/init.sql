-- Roles and databases of the client_cert setup (test passwords only).
SET password_encryption = 'scram-sha-256';
CREATE ROLE "certuser" LOGIN;
