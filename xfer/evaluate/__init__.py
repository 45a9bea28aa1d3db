"""xfer.evaluate."""
