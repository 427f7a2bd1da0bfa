"""What the people who run the server watch: Prometheus metrics (metrics.py: the counters the spine
bumps; gauges.py: what the database holds, read at scrape time) and structured logs (logs.py)."""
