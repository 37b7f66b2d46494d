"""The emulator's kubelet: runs the containers of pods bound to its node as local processes and reports
their status as the kubelet does (docs/pods.md). Off unless `emulator serve --kubelet` (or `--image-map`).

- `kubelet.py`: the engine object (store events → one worker per pod; the API layer's entry points);
- `podworker.py`: one pod's lifecycle (init containers, sidecars, restarts, hooks, termination);
- `process.py`: spawning, watching and killing one container's process group, its output to the logs;
- `images.py`: what runs (a pod's own command, or the owner's image map);
- `state.py`: what runs, kept on disk so that a restarted emulator adopts it;
- `context.py`: `ContainerContext`, what a spawner needs to know about one container.
"""
