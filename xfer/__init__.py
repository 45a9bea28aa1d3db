"""xfer."""
