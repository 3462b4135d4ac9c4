FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir uv \
 && uv pip install --system --no-cache --require-hashes -r requirements.lock
COPY . .
RUN uv pip install --system --no-deps --no-cache -e .
