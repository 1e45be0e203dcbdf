"""A clean terminal for jobs whose work runs in Ray workers.

Jobs start Ray with `quiet_ray_init()`: worker stdout/stderr stay in Ray's log files (Ray's
`log_to_driver=False`) and Ray's own INFO lines are off. What the user should see travels on purpose:
a worker puts its lines (progress, and its sa0 warnings and errors through `forward_warnings`) on a
small `Console` actor, and the driver prints them while it waits (`print_while`). Failures still reach
the driver as the exceptions Ray raises there, with their tracebacks.
"""

from __future__ import annotations

import logging
import sys
import threading

CHATTY = ("mlflow", "ray.train", "ray.tune")


class _DropNotice(logging.Filter):
    """Drops one informational notice by its opening words (the rest of the logger's warnings stay)."""

    def __init__(self, opening: str):
        super().__init__()
        self.opening = opening

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.opening)


RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def quiet_libraries() -> None:
    """Library INFO chatter (MLflow's table creation, ...) off the console; warnings stay, except Ray's
    notice that token authentication is on (the default, nothing to do; its warning when it is off
    stays)."""
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    auth = logging.getLogger(RAY_AUTH_LOGGER)
    if not any(isinstance(f, _DropNotice) for f in auth.filters):
        auth.addFilter(_DropNotice("Token authentication is enabled"))


def quiet_ray_init(address: str | None = None, worker_output: bool = False):
    """ray.init without Ray's INFO lines; worker stdout/stderr reach this terminal only if asked
    (a job whose tasks print nothing of their own but warnings)."""
    import ray

    quiet_libraries()
    return ray.init(address=address, log_to_driver=worker_output, logging_level=logging.WARNING)


def make_console():
    """A Ray actor holding lines for the driver to print (call after ray.init())."""
    import ray

    @ray.remote(num_cpus=0)
    class Console:
        def __init__(self):
            self.lines: list[str] = []

        def put(self, line: str) -> None:
            self.lines.append(line)

        def drain(self) -> list[str]:
            lines, self.lines = self.lines, []
            return lines

    return Console.remote()


def say(console, line: str) -> None:
    """From a worker: a line for the driver's terminal (printed here when there is no console)."""
    if console is None:
        print(line, flush=True)
    else:
        console.put.remote(line)


class _Forward(logging.Handler):
    def __init__(self, console, prefix: str):
        super().__init__(logging.WARNING)
        self.console, self.prefix = console, prefix

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.console, f"{self.prefix}{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # never let reporting break the work
            pass


def forward_warnings(console, prefix: str = "") -> None:
    """In a worker: sa0's warnings and errors also go to the driver's terminal (once per process)."""
    if console is None:
        return
    logger = logging.getLogger("sa0")
    if not any(isinstance(h, _Forward) for h in logger.handlers):
        logger.addHandler(_Forward(console, prefix))


def print_while(fn, console, interval_s: float = 0.5):
    """Run fn() in a thread, printing the console's lines here as they arrive; -> fn()'s result
    (its exception re-raised here)."""
    import ray

    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while True:
        thread.join(interval_s)
        for line in ray.get(console.drain.remote()):
            print(line, file=sys.stdout, flush=True)
        if not thread.is_alive():
            break
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
