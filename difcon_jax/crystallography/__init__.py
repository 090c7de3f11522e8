"""Crystallography core: space-group tables, CIF reading, Bragg peak lists, wavelengths."""
