"""Our identity into a Python ``ssl`` context, without a temporary directory."""

from __future__ import annotations

import os
import ssl
import tempfile

from mtlsdemo.pki.material import IdentityMaterial


def load_identity(ctx: ssl.SSLContext, m: IdentityMaterial) -> None:
    """Give ``ctx`` our certificate and key without a temporary directory: ``ssl``
    reads only paths, and a pod with a read-only root may have no writable /tmp
    (this runs exactly when a call has already failed). On Linux the files are
    anonymous memory (memfd); elsewhere a private temporary directory."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create(name) for name in ("tls.crt", "tls.key")]
        try:
            for fd, data in zip(fds, (m.cert_chain_pem, m.key_pem), strict=True):
                os.write(fd, data)
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="mtlsdemo-diagnose-") as d:
        crt, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        for path, data in ((crt, m.cert_chain_pem), (key, m.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(crt, key)
