class PkiError(Exception):
    """Bad input to the PKI: the message names the file or flag at fault.

    The CLI prints it on one line and exits with status 2.
    """
