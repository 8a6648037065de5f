"""Receive: DICOM associations in, durable spool files and instance rows out.

``scp`` (the AE, its policy and server), ``store`` (the C-STORE handler), ``validate`` (checks
before we acknowledge), ``tags`` (what assembly needs, read once), ``spool`` (durable files),
``errors`` (the error tree and its DIMSE statuses).
"""
