"""A lossless codec for μ-law audio streams with a WaveNet as the entropy model.

compress.py     compress / decompress (codes <-> bytes) and the file-level forms the CLI uses
coder.py        the range coding loops over the incremental sampler, segments as batch rows
probability.py  logits -> float32 probabilities, the same bits on every machine
container.py    the .wgc file: magic, version, JSON header, payload, digests
identity.py     model sha256 and the setup that must match to decode
"""

from .compress import FORMAT, compress, compress_file, decompress, decompress_file

__all__ = ["FORMAT", "compress", "compress_file", "decompress", "decompress_file"]
