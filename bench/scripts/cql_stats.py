#!/usr/bin/env python3
"""Request counts of a local Cassandra from its virtual tables (Cassandra 4+).

usage: cql_stats.py [host] [port] > stats.json
Prints per keyspace.table the local/coordinator write and read counts
(system_views.*_latency, count column) and the thread pools' completed tasks
(system_views.thread_pools). The counts are cumulative since the JVM started:
take one before and one after a run and subtract (thread pools), or read the
per-table counts of the run's own keyspace (herald-bench uses a fresh one).
Needs the DataStax driver: pip install cassandra-driver (3.30.1 used).
"""
import json
import sys

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9042
# deploy/services/cassandra.sh runs PasswordAuthenticator with the default superuser.
cluster = Cluster([host], port=port, auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
s = cluster.connect()
out = {}
for view in ["local_write_latency", "local_read_latency", "local_scan_latency", "coordinator_write_latency", "coordinator_read_latency"]:
    out[view] = {f"{r.keyspace_name}.{r.table_name}": r.count for r in s.execute(f"SELECT * FROM system_views.{view}") if r.count}
out["thread_pools_completed"] = {r.name: r.completed_tasks for r in s.execute("SELECT * FROM system_views.thread_pools") if r.completed_tasks}
cluster.shutdown()
print(json.dumps(out, indent=1, sort_keys=True))
