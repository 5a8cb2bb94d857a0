# oransim image: Python 3.11 on Debian bookworm, g++ for the ns-3 wheel's cppyy, the project with its ns3 extra.
# BASE_IMAGE: any Debian bookworm image with python3, pip, venv and g++ can stand in for the official
# one (e.g. a local debootstrap image on a machine without registry access: scripts/compose_check.sh).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make git \
    && rm -rf /var/lib/apt/lists/*
# a venv: the same pip and `python` on the official image and on Debian's own python3 (PEP 668)
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/oransim
COPY pyproject.toml README.md ./
COPY simcore ./simcore
COPY policies ./policies
COPY analysis ./analysis
COPY ns3_bridge ./ns3_bridge
COPY oransim ./oransim
COPY scenarios ./scenarios
RUN pip install --no-cache-dir -e '.[ns3]'
# compile the ns-3 PHY server (ns3-shm backend) into the image, so containers start without g++ work
ENV ORANSIM_CACHE=/opt/oransim/.cache
RUN python -c "from ns3_bridge.build import server_binary; print(server_binary())"
ENTRYPOINT ["oransim"]
CMD ["--help"]
