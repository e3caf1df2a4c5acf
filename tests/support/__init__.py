"""What every test tier shares, imported as ``support.<module>`` (tests/ is on the
path through the root conftest): no test module imports ``conftest`` or another
test module (tests/unit/test_lint.py checks it).

- ``tools``: tier requirements (skip with the reason; MTLSDEMO_REQUIRE fails instead)
- ``processes``: mtlsdemo as real processes, `mtlsdemo run` on free ports, waiting
- ``identities``: identity directories from the project's CA code, the mesh's IDs
- ``metrics``: Prometheus text (the package's one reader) and scrapes
- ``sidecars``: two sidecars as processes, their admin, raw tunnels, forged records
- ``apps``: stand-in apps behind the sidecars (TCP and gRPC echo)
- ``native``: ledger + gateway over native gRPC mTLS
- ``certkit``, ``hskit``: in-memory chains and handshake configs for the unit tier
- ``fake_k8s``: the Secret API in memory
- ``docker``: the containers tier's fixtures (a pytest plugin)
"""
