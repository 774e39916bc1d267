# hipbridge on the front-end machine: Airflow 3.3 + the hipbridge package, one image for every role.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/hipbridge/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/hipbridge/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    HIPBRIDGE_SPECS=/opt/hipbridge/table_specs \
    HIPBRIDGE_MAPPINGS=/opt/hipbridge/mappings
WORKDIR /opt/hipbridge
COPY requirements.txt pyproject.toml ./
RUN pip install -r requirements.txt
COPY plugins ./plugins
# Bytecode now: the image runs as `airflow`, which cannot write __pycache__ beside these root-owned
# sources, so every process would compile hipbridge again (start-up of `hipbridge run`, issue 14).
RUN pip install --no-deps -e . && python -m compileall -q plugins
COPY dags ./dags
COPY table_specs ./table_specs
COPY mappings ./mappings
COPY expectations ./expectations
COPY config ./config
# The named volumes of docker-compose.yml (logs, hipbridge home) take this ownership when first created.
RUN useradd --create-home --uid 50000 airflow \
    && mkdir -p $AIRFLOW_HOME/logs $AIRFLOW_HOME/hipbridge && chown -R airflow $AIRFLOW_HOME
USER airflow
