# flowsentinel prediction service.
#   docker build -t flowsentinel .
#   docker run -p 8000:8000 -e FLOWSENTINEL_SERVE_MODELS=models:/flowsentinel-cicids2017-dos@champion \
#     -e MLFLOW_TRACKING_URI=http://mlflow:5000 flowsentinel
#   or a mounted model folder: -v /path/to/model:/models/dos:ro -e FLOWSENTINEL_SERVE_MODELS=/models/dos
# See docs/service.md and compose.yaml.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/flowsentinel \
    && /opt/flowsentinel/bin/pip install --upgrade pip wheel \
    && /opt/flowsentinel/bin/pip install . \
    # the web page's files, whatever the package-data configuration says
    && site="$(/opt/flowsentinel/bin/python -c 'import flowsentinel.service as s, os; print(os.path.dirname(s.__file__))')" \
    && mkdir -p "$site/static" && cp -rn src/flowsentinel/service/static/. "$site/static/"

FROM python:${PYTHON_VERSION}-slim
# libgomp: OpenMP runtime of XGBoost and LightGBM models
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flowsentinel \
    && useradd --system --uid 10001 --gid flowsentinel --home-dir /home/flowsentinel \
       --create-home --shell /usr/sbin/nologin flowsentinel
COPY --from=build /opt/flowsentinel /opt/flowsentinel
ENV PATH=/opt/flowsentinel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FLOWSENTINEL_HOME=/home/flowsentinel/.flowsentinel \
    FLOWSENTINEL_SERVE_HOST=0.0.0.0 \
    FLOWSENTINEL_SERVE_PORT=8000 \
    FLOWSENTINEL_SERVE_WORKERS=1 \
    FLOWSENTINEL_SERVE_MODELS=models:/flowsentinel-cicids2017-dos@champion \
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true
USER flowsentinel
WORKDIR /home/flowsentinel
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('FLOWSENTINEL_SERVE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["flowsentinel"]
CMD ["serve"]
