"""The four steps' short titles, by the core's step names (handshake.states): the one
table `break --list` and `mtlsdemo illustrate` print them from. Step 4 has two parts,
the Finished messages and the encrypted data after them: one name everywhere,
"finished → encrypted data" (README, docs, console, trace)."""

STEP_TITLES = {
    "hello": "step 1 — hello",
    "certificate_verify": "step 2 — certificate verification",
    "key_exchange": "step 3 — key exchange",
    "finished": "step 4 — finished → encrypted data",
    "data": "step 4 — encrypted data",
}
