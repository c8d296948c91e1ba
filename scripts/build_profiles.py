"""Regenerate the shipped estimated profiles (clover_rl/serving/profiles/*.yaml)."""
from __future__ import annotations

from clover_rl.mig.catalog import get_gpu
from clover_rl.paths import profiles_dir
from clover_rl.services import list_services, load_service
from clover_rl.serving.estimate import estimate_profile


def main() -> None:
    for gpu_name in ("a100-40gb",):
        gpu = get_gpu(gpu_name)
        for name in list_services():
            prof = estimate_profile(load_service(name), gpu)
            path = prof.save(profiles_dir() / f"{name}_{gpu.name}.yaml")
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
