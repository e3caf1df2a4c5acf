"""Certificate bootstrap: root CA, per-service leaves, CSR signing, inspection.

Knows nothing of the sidecar or the services; they consume the files it writes.
"""

from mtlsdemo.pki.errors import PkiError

__all__ = ["PkiError"]
