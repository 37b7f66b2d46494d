"""A small gRPC server for the probe tests, run as a pod's container: the standard health service
(grpc.health.v1.Health) on $POD_IP:$PORT, NOT_SERVING for the first $WARMUP seconds, then SERVING."""

from __future__ import annotations

import os
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main() -> None:
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"{os.environ['POD_IP']}:{os.environ['PORT']}")
    server.start()
    print("serving health on", os.environ["POD_IP"], os.environ["PORT"], flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if not done.wait(float(os.environ.get("WARMUP", "0"))):
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        print("SERVING", flush=True)
    done.wait()
    server.stop(1)


if __name__ == "__main__":
    main()
