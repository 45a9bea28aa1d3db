"""xfer.models."""
