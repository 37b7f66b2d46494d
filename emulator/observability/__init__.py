"""What the emulator tells about itself: Prometheus metrics (`metrics.py`: every metric defined once, on a
registry of its own; `stats.py`: the plain counters of the DNS and proxy data paths, read at scrape time).
`GET /metrics` (api/prometheus.py) serves them. See docs/metrics.md.
"""
