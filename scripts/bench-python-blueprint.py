#!/usr/bin/env python3
"""Times AWS's Python blueprint logic (kinesis-firehose-process-record-python,
https://github.com/amazon-archives/serverless-app-examples)
on the same event as kpipe-runtime/benches/lambda.rs, doing the same light transform.

    KPIPE_WRITE_EVENT=/tmp/event.json cargo bench -p kpipe-runtime --all-features --bench lambda
    python3 scripts/bench-python-blueprint.py /tmp/event.json

Per record: base64-decode, parse the JSON reading, convert Celsius to Fahrenheit, write a JSON
line, base64-encode; then serialise the response, as the handler returns it to Lambda. The
blueprint's print statements are left out, as they are on the Rust side.
"""
import base64
import json
import statistics
import sys
import time


def lambda_handler(event, context):
    output = []
    for record in event["records"]:
        payload = json.loads(base64.b64decode(record["data"]))
        payload["fahrenheit"] = payload.pop("celsius") * 1.8 + 32.0
        data = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
        output.append({"recordId": record["recordId"], "result": "Ok",
                       "data": base64.b64encode(data).decode("utf-8")})
    return {"records": output}


def main():
    raw = open(sys.argv[1], "rb").read()
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        event = json.loads(raw)  # Lambda's Python runtime parses the event too
        body = json.dumps(lambda_handler(event, None))
        times.append(time.perf_counter() - start)
    print(f"python blueprint: {len(raw)} bytes, {len(json.loads(raw)['records'])} records, "
          f"median {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms over {runs} runs, "
          f"response {len(body)} bytes")


if __name__ == "__main__":
    main()
