"""Delivery of results: the transactional outbox (``outbox``), its sender (``sender``) and the
channels — C-STORE (``cstore``), STOW-RS (``stow``) and HL7 ORU over MLLP (``mllp``)."""

from dicom_node.deliver.outbox import DeliveryState, deliveries, enqueue, retry_dead
from dicom_node.deliver.sender import DeliverySender

__all__ = ["DeliverySender", "DeliveryState", "deliveries", "enqueue", "retry_dead"]
