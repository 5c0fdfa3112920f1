"""aiopgtls: PostgreSQL connection establishment with libpq's sslmode ladder over anyio."""
