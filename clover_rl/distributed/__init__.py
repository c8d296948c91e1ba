"""Ray for parallel work: the benchmark suite's cases over Ray workers and SB3 rollouts over Ray
actors. Ray is the optional ``ray`` extra: nothing here imports it at module load, and asking for
it without the extra raises a one-line ``ConfigError`` naming the extra
(:func:`clover_rl.distributed.runtime.require_ray`).
"""
