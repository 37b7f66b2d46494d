"""NetworkPolicy: the pure decision and validation (semantics.py) and the engine that indexes pods and
policies from store events so the proxy can ask for a verdict per connection (engine.py)."""
