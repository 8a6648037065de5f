"""HL7 v2.5.1 for pulmonode: the ORU^R01 result builder (pure), ACK parsing, an MLLP client and
an MLLP listener that plays the EHR. Built on hl7apy; never imports dicom_node or ai_engine."""
