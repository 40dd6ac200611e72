"""``python -m vedirect_async``."""

from .cli import run_main

if __name__ == "__main__":
    run_main()
