"""Planning clips, running batches, writing outputs, resuming and sharding (``tdgen synth``)."""

from .finalize import finalize, fragments_to_trackset
from .outputs import SynthDir
from .runner import SynthOptions, SynthResult, make_prompt, parse_shard, plan_synth, run_synth, shard_from_env

__all__ = ["SynthDir", "SynthOptions", "SynthResult", "finalize", "fragments_to_trackset", "make_prompt",
           "parse_shard", "plan_synth", "run_synth", "shard_from_env"]
