# oransim image: Python 3.11 on Debian bookworm, g++ for the ns-3 wheel's cppyy, the project with its ns3 extra.
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make git \
    && rm -rf /var/lib/apt/lists/*
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
