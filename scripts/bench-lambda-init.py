#!/usr/bin/env python3
"""Cold init time of a Lambda binary: from process start to its first `/next` request.

A stand-in for the Lambda runtime API ("Using the Lambda runtime API for custom runtimes",
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) listens on a loopback port;
the binary is started with AWS_LAMBDA_RUNTIME_API pointing at it, the time until its first
GET .../runtime/invocation/next is recorded, and the process is killed. Repeated N times; the
median and the fastest are printed, with the stripped size of the binary.

    python3 scripts/bench-lambda-init.py target/release/quickstart_lambda [N]
"""

import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def main() -> None:
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    first_next = threading.Event()

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path.endswith("/runtime/invocation/next"):
                first_next.set()
            # Hold the request: the binary waits for an invocation that never comes.
            time.sleep(5)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
        AWS_LAMBDA_FUNCTION_NAME="telemetry-enrich",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/telemetry-enrich",
        AWS_REGION="us-west-2",
    )
    times = []
    for _ in range(runs):
        first_next.clear()
        start = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not first_next.wait(10):
            proc.kill()
            sys.exit(f"{binary} made no /next request within 10 s (exit code {proc.poll()})")
        times.append((time.perf_counter() - start) * 1000)
        proc.kill()
        proc.wait()
    server.shutdown()

    with tempfile.TemporaryDirectory() as d:
        stripped = os.path.join(d, "bootstrap")
        shutil.copy(binary, stripped)
        subprocess.run(["strip", stripped], check=True)
        size = os.path.getsize(stripped)
    print(
        f"{binary}: stripped {size / 1024 / 1024:.2f} MiB; init to first /next: "
        f"median {statistics.median(times):.2f} ms, fastest {min(times):.2f} ms ({runs} runs)"
    )


if __name__ == "__main__":
    main()
