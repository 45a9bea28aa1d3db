"""xfer.transfer."""
