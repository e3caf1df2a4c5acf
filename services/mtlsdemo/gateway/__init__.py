"""The gateway: the public gRPC API, served by calling the ledger."""
