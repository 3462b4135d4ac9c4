# The image of every ibdata service (web, workers, beat, Flower, the simulator): the locked,
# hashed environment, run by an unprivileged user.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 --user-group ibdata
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir uv \
 && uv pip install --system --no-cache --compile-bytecode --require-hashes -r requirements.lock
COPY . .
RUN uv pip install --system --no-deps --no-cache -e . \
 && python -m compileall -q manage.py ibdata_project fetcher backtests ibsim ibdata \
 && mkdir -p /data /logs && chown ibdata:ibdata /data /logs
ENV DATA_DIR=/data LOG_DIR=/logs
USER ibdata
EXPOSE 8000 5555
