"""The worker of "Try it with Prometheus": a background job loop with no HTTP server of its own
for traffic. It reports to the worker sidecar in the two ways the sidecar supports:

- DogStatsD lines over UDP to 127.0.0.1:$STATSD_PORT (the maintained families: GitHub API and
  webhook latency, GraphQL operations, DB query time), and
- its own prometheus_client endpoint on 127.0.0.1:$METRICS_PORT/metrics, which the sidecar merges
  into its exposition (MERGE_TARGETS).

It also makes a classic mistake on purpose: it tags a counter with a task id, one new series per
task. The sidecar's series cap (METRICS_MAX_SERIES_PER_FAMILY) refuses the excess and counts it in
metrics_sidecar_series_dropped_total, which the chart's MetricsSidecarSeriesDropped alert watches.

It stops by itself after $WORKER_MAX_SECONDS (default 900), or on SIGTERM.
"""
import os
import random
import socket
import time

from prometheus_client import Counter, Gauge, start_http_server

STATSD = ("127.0.0.1", int(os.environ.get("STATSD_PORT", "9125")))
METRICS_PORT = int(os.environ.get("METRICS_PORT", "8001"))
MAX_SECONDS = float(os.environ.get("WORKER_MAX_SECONDS", "900"))
TICK_SECONDS = 0.25

jobs = Counter("worker_jobs_processed", "Jobs processed by the worker.", ["queue"])
depth = Gauge("worker_queue_depth", "Jobs waiting in the queue.", ["queue"])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def statsd(*lines):
    """One datagram, several DogStatsD lines."""
    sock.sendto("\n".join(lines).encode(), STATSD)


def main():
    start_http_server(METRICS_PORT, addr="127.0.0.1")
    deadline = time.monotonic() + MAX_SECONDS
    task = 0
    while time.monotonic() < deadline:
        task += 1
        queue = random.choice(["default", "mail"])
        event = random.choice(["push", "pull_request"])
        statsd(
            f"github_webhook_latency:{random.uniform(0.01, 0.3):.4f}|h|#event:{event}",
            f"github_api_call_latency:{random.uniform(20, 400):.1f}|ms|#endpoint:/repos/{{owner}}/{{repo}}/pulls,status:200",
            "graphql_requests:1|c|#operation:syncPullRequests",
            f"sqlalchemy_query_latency:{random.uniform(0.3, 12):.2f}|ms|#statement:UPDATE",
            f"worker_task_runs:1|c|#queue:{queue},task_id:{task}",  # the mistake: an id as a tag
        )
        jobs.labels(queue).inc()
        depth.labels(queue).set(random.randint(0, 20))
        time.sleep(TICK_SECONDS)


if __name__ == "__main__":
    main()
