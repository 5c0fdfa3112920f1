-- Roles and databases of the main setup (test passwords only).
SET password_encryption = 'scram-sha-256';
CREATE ROLE "sslonly" LOGIN;
SET password_encryption = 'scram-sha-256';
CREATE ROLE "nosslonly" LOGIN;
SET password_encryption = 'scram-sha-256';
CREATE ROLE "scram" LOGIN PASSWORD 'scram-secret';
SET password_encryption = 'md5';
CREATE ROLE "md5user" LOGIN PASSWORD 'md5-secret';
SET password_encryption = 'scram-sha-256';
CREATE ROLE "pwuser" LOGIN PASSWORD 'plain-secret';
SET password_encryption = 'scram-sha-256';
CREATE ROLE "certuser" LOGIN;
SET password_encryption = 'scram-sha-256';
CREATE ROLE "verifyca" LOGIN;
SET password_encryption = 'scram-sha-256';
CREATE ROLE "app" LOGIN;
CREATE DATABASE "app" OWNER "app";
