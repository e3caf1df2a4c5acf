"""The SPIFFE Workload API: ``mtlsdemo agent`` issues short-lived X.509-SVIDs to the
workloads that reach its sockets and pushes the next one before the last expires;
``WorkloadApiSource`` is the workload's side, the identity loader's twin for a socket."""
