"""De-identification (PS3.15 Annex E) of received studies and re-identification of results.

``profile`` (Table E.1-1 as data) → ``deidentify`` (one instance, collecting the map in a
``DeidContext``) → ``study`` (copies on disk) … results … → ``reidentify`` (back onto the original
study, with a ``ReidentificationMap`` kept sealed by ``vault``). ``pseudonym`` makes the keyed pseudonyms.
"""
