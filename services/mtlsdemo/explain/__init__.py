"""The commands that teach: ``handshake --trace`` (``trace``), ``handshake --tls13``
(``tls13``) and ``mtlsdemo tour`` (``tour``)."""
