# The emulator as a container: API, DNS and Host-header gateway of one `emulator serve`.
#
#   docker build -t k8s-emulator:local .
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:1053:1053/udp -p 127.0.0.1:1053:1053/tcp \
#              -p 127.0.0.1:8081:8081 -p 127.0.0.1:8443:8443 -v k8s-emulator-data:/data k8s-emulator:local
#
# Flags after the image name go to `emulator serve` (e.g. `--in-memory`). docs/containers.md explains
# the choices; docker-compose.yml runs it next to demo services.

# The kubelet's podnet library (emulator/kubelet/podnet.py), built where a compiler is: the slim image
# has none, and needs none.
FROM python:3.12 AS podnet
COPY emulator/kubelet/podnet.c /podnet.c
RUN cc -O2 -shared -fPIC -o /podnet.so /podnet.c -ldl

FROM python:3.12-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Only what `pip install .` needs (see .dockerignore); the sources are removed once installed.
COPY pyproject.toml README.md /src/
COPY emulator /src/emulator
COPY api /src/api
RUN pip install /src && rm -rf /src
COPY --from=podnet /podnet.so /usr/local/lib/k8s-emulator/podnet.so
ENV EMULATOR_PODNET_LIBRARY=/usr/local/lib/k8s-emulator/podnet.so

# A user of its own, and a data directory it owns: a named volume mounted on /data starts as a copy
# of this directory, owner included, so the emulator can write its store there without root.
RUN groupadd --system --gid 10001 emulator \
 && useradd --system --uid 10001 --gid emulator --create-home --home-dir /home/emulator emulator \
 && mkdir /data && chown emulator:emulator /data
USER emulator:emulator
WORKDIR /home/emulator

# Inside the container every face listens on all its addresses (publishing decides who can reach
# them); the same settings as environment variables, so that flags given to `docker run` add to them.
# Off loopback the API requires bearer tokens (and speaks HTTPS) unless --allow-anonymous is given:
# the admin token and a kubeconfig are then in /data.
ENV EMULATOR_API_HOST=0.0.0.0 \
    EMULATOR_API_PORT=8080 \
    EMULATOR_DNS_HOST=0.0.0.0 \
    EMULATOR_DNS_PORT=1053 \
    EMULATOR_GATEWAY_HOST=0.0.0.0 \
    EMULATOR_GATEWAY_PORT=8081 \
    EMULATOR_GATEWAY_HTTPS_PORT=8443 \
    EMULATOR_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080/tcp 1053/udp 1053/tcp 8081/tcp 8443/tcp

# /readyz is open to anonymous callers either way; try HTTP, then HTTPS (when tokens are required).
# slim images have no curl, hence Python.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, ssl, sys, urllib.request\nport = os.environ.get('EMULATOR_API_PORT', '8080')\ncontext = ssl.create_default_context()\ncontext.check_hostname = False\ncontext.verify_mode = ssl.CERT_NONE\nfor scheme in ('http', 'https'):\n    try:\n        with urllib.request.urlopen(f'{scheme}://127.0.0.1:{port}/readyz', timeout=3, context=context) as r:\n            sys.exit(0 if r.status == 200 else 1)\n    except Exception:\n        pass\nsys.exit(1)\n"]

ENTRYPOINT ["emulator", "serve"]
CMD []
