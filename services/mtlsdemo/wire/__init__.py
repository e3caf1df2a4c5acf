"""On the wire: the MTD/1 Wireshark dissector shipped with the package, the tables it
takes from the core, and `mtlsdemo capture` (a pcapng of the running mesh with the keys
to decrypt it)."""
