"""Does generated data help? A learned detector, a ByteTrack-style tracker and the benchmark that
trains them on real, generated and gated shapes clips (``benchmarks/trainability.py``)."""
