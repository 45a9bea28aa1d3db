"""xfer.train."""
