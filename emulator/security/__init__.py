"""Security: who may call the API (authentication, authorization), service-account tokens, TLS for the
API, and the private files of the data directory that hold the keys."""
