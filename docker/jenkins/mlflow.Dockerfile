# The MLflow tracking server the bundled controller's jobs share as their model registry
# (examples/credit-risk sets jenkins.registry: {backend: mlflow}). See docker/jenkins/README.md.
# 3.5+ has the Host-header check configured by MLFLOW_SERVER_ALLOWED_HOSTS (compose.yaml).
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow>=3.5,<4" \
 && useradd --create-home --uid 1000 mlflow \
 && mkdir -p /mlflow && chown mlflow:mlflow /mlflow
USER mlflow
VOLUME /mlflow
EXPOSE 5000
# SQLite backend store and a local artifact destination on the volume; --serve-artifacts proxies artifact
# uploads and downloads through the server, so the agents need no access to the volume.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", \
     "--backend-store-uri", "sqlite:////mlflow/mlflow.db", \
     "--serve-artifacts", "--artifacts-destination", "/mlflow/artifacts"]
