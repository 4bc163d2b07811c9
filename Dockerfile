# syntax=docker/dockerfile:1
# The operator image: the `lokifi-storage` CLI (operator, backup, restore, vacuum, partitions)
# and PostgreSQL's client tools, which the backup CronJobs run with this same image.
#
#   docker build -t ghcr.io/lokifi/lokifi-storage-operator:0.1.0 .
#
# pg_dump must be at least as new as the server it dumps, and pg_restore must read what that
# pg_dump wrote: the client comes from the PostgreSQL project's Debian repository at the newest
# major (it dumps and restores every server from 9.2 on). Override with --build-arg PG_MAJOR=16.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# --- build: wheels of the project and its dependencies into a venv -----------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler and SQLite's headers for the compiled SQLite reader of `migrate sqlite`
# (setup.py); the runtime stage needs only libsqlite3, which Python's sqlite3 uses already.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libsqlite3-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/lokifi
WORKDIR /src
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml setup.py README.md ./
RUN mkdir -p operator/lokifi_storage && touch operator/lokifi_storage/__init__.py \
    && /opt/lokifi/bin/pip install . \
    && /opt/lokifi/bin/pip uninstall -y lokifi-storage-operator
COPY operator ./operator
RUN /opt/lokifi/bin/pip install --no-deps . \
    && /opt/lokifi/bin/lokifi-storage --help >/dev/null \
    && /opt/lokifi/bin/python -c 'import lokifi_storage.clients._sqlite_copy'

# --- runtime ---------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
ARG DEBIAN_RELEASE
ARG PG_MAJOR=17
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${DEBIAN_RELEASE}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    pg_dump --version; pg_restore --version

COPY --from=build /opt/lokifi /opt/lokifi
# A fixed non-root user (the chart's runAsUser); the root filesystem can be read-only: Python
# writes no bytecode and the only scratch space is /tmp.
RUN groupadd --system --gid 65532 lokifi \
    && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin lokifi
ENV PATH=/opt/lokifi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOKIFI_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["lokifi-storage"]
CMD ["run", "--all-namespaces"]
