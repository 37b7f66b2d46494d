"""The official Python client's end-to-end suite, run against the emulator (see docs/client-e2e.md)."""
