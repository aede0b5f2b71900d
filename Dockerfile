# The image every Shardex service of docker-compose.yml runs (gateway, worker,
# the one-shot deploy). CPU programs only: the `embed` extra (torch, ~1 GB) is
# left out; add it to the pip line for workers that run `embed`.
FROM python:3.11-slim-bookworm

# bubblewrap: the task sandbox (workers refuse user programs without it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shardex ./shardex
COPY shardex_cli ./shardex_cli
COPY deploy ./deploy
COPY worker ./worker
COPY backend ./backend
RUN pip install --no-cache-dir '.[postgres]'

# The workers' data and the home exist in the image, owned by the user: a named
# volume mounted there starts with that ownership.
RUN useradd --create-home shardex \
 && mkdir -p /home/shardex/data /home/shardex/.shardex \
 && chown -R shardex:shardex /home/shardex
USER shardex
ENV SHARDEX_HOME=/home/shardex/.shardex
ENTRYPOINT ["shardex"]
