"""The adapters between the sans-I/O handshake core and the world: the real clocks
and randomness (``world``), an identity directory turned into a handshake config
(``identity``), and one blocking client handshake over TCP (``dial``)."""
