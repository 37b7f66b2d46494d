"""The commands (`emulator serve|run|env|kubeconfig`), kept apart from the engine: serve.py is the
composition root, the one module that hands the engine the HTTP layer (api/)."""
