# mloci's own image: what Kubernetes init containers run to pull models by digest.
#   docker build -t registry.example.com/tools/mloci:0.1.0 .
FROM python:3.12-slim

# No compilers, no cache: the image only needs mloci and its pure-Python dependencies.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml README.md LICENSE /src/
COPY mloci /src/mloci
RUN pip install /src && rm -rf /src

# Run as an unprivileged user; MLOCI_HOME must be writable (an emptyDir in Kubernetes).
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin mloci
USER 10001
ENV MLOCI_HOME=/tmp/mloci DOCKER_CONFIG=/docker
ENTRYPOINT ["mloci"]
CMD ["--help"]
