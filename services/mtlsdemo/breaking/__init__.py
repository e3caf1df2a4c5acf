"""`mtlsdemo break`: failures on purpose against the running local mesh, each
explained (who refused whom, the reason, the alert, the metrics) and undone."""
