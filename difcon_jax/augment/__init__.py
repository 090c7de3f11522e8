"""Augmentation: Bragg peak lists -> full powder patterns, on the device (paper section 4.3, Table 1)."""
