"""The hub: the catalog of published datasets and generators, checked downloads, and the reference generators' loader."""
