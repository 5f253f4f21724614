"""Trainability: does training on generated clips help a detector and tracker? (shapes domain)

    python benchmarks/trainability.py --work WORK_DIR [--tiny] [--steps 500] [--seeds 0,1,2] ...

Renders a real training set and a held-out set with ``tdgen shapes``, generates clips from the
training set's tracklets with ``tdgen synth`` (bundled model), gates a copy with ``tdgen gate``,
then trains the same small CenterNet detector for the same steps and batch size on each arm
(real only at 10% and 50%, real 10% + generated, real 10% + gated, generated only), once per
seed, tracks with a ByteTrack-style tracker and scores every arm on the held-out clips with
detection recall/precision and HOTA/MOTA/IDF1. Prints a table; writes WORK_DIR/result.json.
See ``tdgen/trainability/run.py`` for the protocol.
"""

from tdgen.trainability.run import main

if __name__ == "__main__":
    raise SystemExit(main())
