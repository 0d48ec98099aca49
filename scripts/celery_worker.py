import sys


def worker_argv(*, name: str, concurrency: int = 2, loglevel: str = "INFO") -> list[str]:
    """A prefork `celery worker` as the tests, the soak test and benchmarks run it:
    no gossip or mingle, which only slow a throwaway worker's start."""
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork",
        f"--concurrency={concurrency}", f"--loglevel={loglevel}", "-n", name,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
