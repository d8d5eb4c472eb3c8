"""Datasets: MNIST, aligned pairs, unaligned A/B collections, single folders (see ``registry``)."""
