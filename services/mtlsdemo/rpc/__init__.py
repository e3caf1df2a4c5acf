"""Shared gRPC plumbing for the services: mTLS credentials with hot reload,
caller authorization by SPIFFE ID, and Prometheus interceptors."""
