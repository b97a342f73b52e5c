"""This working tree against another revision, head to head: the hot paths of two
``serve`` processes, one per version, on the same Redis and origin, rounds
alternating (as in ``bench.py``). A ratio above 1 means this tree is faster.

For a change meant to keep speed as it is (a restructuring), this says so directly:
two versions measured minutes apart on a noisy 2-core machine differ by more than
two versions measured side by side. Traffic goes to 127.0.0.1 only.

Usage: python loadtests/versus.py [--base HEAD~1] [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from waitingroom.tools.redis_server import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, SECRET, compare, cookies_for, server, uvicorn_app


def _serve_from(tree: str) -> list[str]:
    """``waitingroom serve`` running the package found in ``tree``."""
    code = (f"import sys; sys.path.insert(0, {tree!r}); from waitingroom.cli import main; "
            "sys.argv = ['waitingroom', 'serve', '--port', '{port}']; main()")
    return [sys.executable, "-c", code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="the revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    room_env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_CAPACITY": "1",
                "WAITINGROOM_GATED_PATHS": "/checkout*",
                "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "0"}  # wrk: one network
    with tempfile.TemporaryDirectory() as scratch:
        base = str(Path(scratch) / "base")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", base,
                        args.base], check=True)
        try:
            with RedisServer() as redis_server, \
                    server(uvicorn_app("loadtests.bench_apps:origin")) as origin:
                env = {**room_env, "WAITINGROOM_ORIGIN": origin,
                       "WAITINGROOM_REDIS_URL": redis_server.url}
                with server(_serve_from(base), env) as old, \
                        server(_serve_from(ROOT), env) as new:
                    admitted, queued, hello = cookies_for(new)
                    print(f"this tree vs {args.base}: wrk -t1 -c64, {args.seconds}s x "
                          f"{args.rounds} rounds, medians")
                    compare(args.rounds, args.seconds, {
                        "admitted request": ((old + "/checkout", admitted),
                                             (new + "/checkout", admitted)),
                        "queued status poll": ((old + "/_wr/status", queued),
                                               (new + "/_wr/status", queued)),
                        "first visit": ((old + "/checkout", None), (new + "/checkout", None)),
                        "the request that takes the place": ((old + "/checkout", hello),
                                                             (new + "/checkout", hello)),
                    })
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", base],
                           check=False)


if __name__ == "__main__":
    main()
