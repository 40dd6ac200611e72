"""``python -m vedirect_async``.

For ``run``, the signal handlers are installed first, before anything else is imported: a
SIGTERM or SIGHUP that arrives while the service is still starting stops it with exit 0 (the
default action would kill it, exit 143), and SIGUSR1/SIGUSR2 are ignored. The service installs
its own handlers once its event loop runs (``service._serve``).
"""

import signal
import sys


def _stop_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)  # nothing has been written yet: stopping now is clean


def _runs_the_service(argv: list[str]) -> bool:
    """True when ``argv`` names no command (``run`` is the default) or ``run``."""
    args = iter(argv)
    for arg in args:
        if arg in ("-c", "--config"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg == "run"
    return True


if __name__ == "__main__":
    if _runs_the_service(sys.argv[1:]):
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop_before_start)
        for signum in (signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_IGN)

    from .cli import run_main

    run_main()
