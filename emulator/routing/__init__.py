"""Ingress and Gateway API routing: pure compilers (ingress.py, gatewayapi.py) from stored objects
(sources.py) to the shapes of model.py, the store listener that keeps them current (index.py) and the
request-time lookup the gateway uses (match.py)."""
