"""pulmonode's service: everything that touches PHI, state, time and sockets."""

__version__ = "0.1.0"
