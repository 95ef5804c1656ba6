# syntax=docker/dockerfile:1
# Build stage: the locked dependencies (exact versions, hashes checked), then harvester itself,
# into a virtualenv. requirements.lock is `uv pip compile pyproject.toml --extra postgres
# --generate-hashes`: the same image from the same commit, whatever PyPI holds that day.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/harvester
COPY requirements.lock ./
RUN /opt/harvester/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY harvester ./harvester
COPY migrations ./migrations
RUN /opt/harvester/bin/pip install --no-deps .

# Runtime stage: the virtualenv only, run as an unprivileged user.
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="harvester" \
      org.opencontainers.image.description="Ships finished Jenkins builds to an SEI custom CI/CD webhook"
RUN groupadd --system --gid 10001 harvester \
 && useradd --system --uid 10001 --gid harvester --home-dir /var/lib/harvester --shell /usr/sbin/nologin harvester \
 && mkdir -p /var/lib/harvester /etc/harvester \
 && chown harvester:harvester /var/lib/harvester
COPY --from=build /opt/harvester /opt/harvester
# Only HARVESTER_CONFIG: any other HARVESTER_ variable would override the mounted config file.
# The config sets ledger.url (default sqlite:///harvester.db, i.e. in this working directory, the
# volume) and server.listen (0.0.0.0:9465 for the HEALTHCHECK and Prometheus).
# MALLOC_ARENA_MAX=2: glibc gives each thread an arena of its own; two keep the daemon's RSS
# about 15 % lower with its dozen threads, at no cost in CPU.
ENV PATH=/opt/harvester/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    HARVESTER_CONFIG=/etc/harvester/config.yaml
WORKDIR /var/lib/harvester
VOLUME ["/var/lib/harvester"]
EXPOSE 9465
USER 10001:10001
# /livez answers 200 while the process and its scheduler are alive (needs server.listen): a Jenkins
# or webhook outage makes /readyz 503, never /livez, since a restart would not fix it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9465/livez', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["harvester"]
CMD ["run"]
