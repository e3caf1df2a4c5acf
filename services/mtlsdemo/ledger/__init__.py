"""The ledger service: accounts and idempotent transfers in SQLite."""
