"""The local mesh: the supervisor behind ``mtlsdemo run`` (``supervisor``), the one
address book of its ports (``ports``) and the client that reads a running mesh the way
``break``, ``tour`` and the console do (``client``)."""
