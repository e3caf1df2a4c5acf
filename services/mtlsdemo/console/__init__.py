"""The mesh console: a web page that draws the mesh, each handshake as a ladder,
certificates on a timeline and failures by who rejected whom, from the sidecars'
admin endpoints and the services' /metrics. It never holds a private key."""
