"""The image sets memnet knows: where each comes from, how to fetch it and how to verify a copy.

`catalog.json` (shipped in the package, written by tools/make_data_catalog.py from the public
source repositories) lists every set with its purpose, its source pinned to one commit and, per
file, the SHA-256 of the source's bytes and a digest of its decoded pixels.
"""

from memnet.catalog.sets import CatalogFile, CatalogSet, Source, find_set, load_catalog

__all__ = ["CatalogFile", "CatalogSet", "Source", "find_set", "load_catalog"]
