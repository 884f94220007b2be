#!/usr/bin/env bash
# Issue 5's GPU figures on a lent H100/H200, one device call per shape (see bench/README.md):
#   device run: bash bench/device/run.sh llm-jp-3-1.8b
#               carry [".gpukit/whl", ".gpukit/sys.tar.xz", ".gpukit/zoneinfo.tar.xz"]  (bench/device/kit.sh)
# 1. installs the kit's wheels beside the image's torch, unpacks PostgreSQL 15 and Redis and starts
#    them (loopback, PostgreSQL as an unprivileged user: it refuses root);
# 2. bench/inference_gpu.py: the engine alone (prompt 640, 256 new tokens): warm-up, one draft,
#    64 concurrent; 3. bench/inference_stack.py: the same checkpoint through the whole stack.
# A compiled run that fails is followed by an eager one, so a call brings back figures either way.
# STEPS (2nd argument, default engine,stack) may name `step`: bench/inference_gpu_step.py (the bare
# decode step per batch size, dynamic vs static graphs, on 2 layers: ~2 minutes). COMPILE_SHAPES=static
# compiles one graph per batch bucket in the engine and stack runs. `gputest`: the suite's GPU tests
# (pytest -m gpu tests/ml; carry .gpukit/testwhl too).
# Local dry run (CPU, tiny shape, other ports): PYTHON=.venv/bin/python DEVICE=cpu PGPORT=5499
#   REDIS_PORT=6399 N=8 NEW=16 bash bench/device/run.sh tiny
set -uo pipefail
SHAPE=${1:-llm-jp-3-1.8b}
STEPS=${2:-engine,stack}  # any of engine, stack, step, gputest
KIT=${KIT:-.gpukit}
OUT=${OUT:-/tmp/medlmm-gpu-out}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
N=${N:-64}
NEW=${NEW:-256}
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/medlmm-inductor}
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*"; }

if ! $PYTHON -c "import django" 2>/dev/null; then
  if [ ! -e /tmp/site/.done ]; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$KIT"/whl/*.whl \
      && touch /tmp/site/.done || { log "wheels did not install"; exit 1; }
  fi
  export PYTHONPATH=/tmp/site
fi
$PYTHON -c "import torch, transformers, django; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'transformers', transformers.__version__, 'django', django.__version__)" | tee -a "$OUT/env.txt"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/env.txt"
df -h /tmp /dev/shm 2>/dev/null | tee -a "$OUT/env.txt"

# --- PostgreSQL and Redis from the kit ----------------------------------------------------------
SYS=/tmp/medlmm-sys
L=$SYS/lib
PGBIN=$SYS/usr/lib/postgresql/15/bin
if [ ! -e $SYS/.done ]; then
  mkdir -p $SYS && tar -C $SYS -xJf "$KIT/sys.tar.xz" && touch $SYS/.done || { log "kit did not unpack"; exit 1; }
fi
[ -e /usr/share/zoneinfo/Asia/Tokyo ] || tar -C /usr/share -xJf "$KIT/zoneinfo.tar.xz"
id medlmmpg >/dev/null 2>&1 || useradd -M -s /bin/sh medlmmpg 2>/dev/null \
  || { echo "medlmmpg:x:7432:7432::/tmp:/bin/sh" >> /etc/passwd; echo "medlmmpg:x:7432:" >> /etc/group; }
as_pg() {  # PostgreSQL refuses to run as root
  if command -v runuser >/dev/null; then runuser -u medlmmpg -- env LD_LIBRARY_PATH=$L "$@"
  else $PYTHON -c 'import os, pwd, sys; p = pwd.getpwnam("medlmmpg"); os.setgid(p.pw_gid); os.setuid(p.pw_uid)
os.environ["LD_LIBRARY_PATH"] = sys.argv[1]; os.execv(sys.argv[2], sys.argv[2:])' "$L" "$@"; fi
}
PGDATA=/tmp/medlmm-pgdata-$PGPORT
if ! LD_LIBRARY_PATH=$L $PGBIN/pg_isready -q -h 127.0.0.1 -p $PGPORT; then
  rm -rf $PGDATA && mkdir -p $PGDATA && chown medlmmpg $PGDATA
  as_pg $PGBIN/initdb -D $PGDATA -U postgres -A trust -E UTF8 --locale=C --no-sync >/tmp/initdb.log 2>&1 \
    || { cat /tmp/initdb.log; exit 1; }
  as_pg $PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=$PGDATA -c max_connections=400" \
    || { cat $PGDATA/server.log; exit 1; }
fi
LD_LIBRARY_PATH=$L $SYS/bin/redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT --save "" \
  --appendonly no --logfile /tmp/medlmm-redis-$REDIS_PORT.log
log "PostgreSQL on $PGPORT and Redis on $REDIS_PORT"

# --- the figures ---------------------------------------------------------------------------------
CK=/tmp/medlmm-ck
# The 13B checkpoint is 26 GB: in memory (/dev/shm) where it has room, which also loads fastest.
SHM_FREE=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
[ "${SHM_FREE:-0}" -gt 40 ] && CK=/dev/shm/medlmm-ck
mkdir -p $CK
for other in $CK/*; do [ -e "$other" ] && [ "$other" != "$CK/$SHAPE" ] && rm -rf "$other"; done
COMPILE=${COMPILE---compile}  # COMPILE= (empty): eager throughout
SHAPES_ARG="--compile-shapes ${COMPILE_SHAPES:-dynamic}"
if [[ $STEPS == *step* ]]; then
  log "bare decode step: $SHAPE, 2 layers"
  $PYTHON bench/inference_gpu_step.py --shape $SHAPE --device $DEVICE --n $N --new $NEW --json "$OUT/step-$SHAPE.json" \
    2>&1 | tee "$OUT/step-$SHAPE.log" | grep -v -E "^Loading weights|^Writing"
fi
if [[ $STEPS == *gputest* ]]; then
  log "GPU tests"
  if ! $PYTHON -c "import pytest_django" 2>/dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-test \
      "$KIT"/testwhl/*.whl && export PYTHONPATH=/tmp/site-test${PYTHONPATH:+:$PYTHONPATH}
  fi
  DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/postgres REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
    $PYTHON -m pytest -p no:cacheprovider -m gpu tests/ml -q -rs 2>&1 | tee "$OUT/gputest.log" | tail -15
fi
if [[ $STEPS == *engine* ]]; then
  log "engine alone: $SHAPE"
  if ! $PYTHON bench/inference_gpu.py --shape $SHAPE --device $DEVICE --n $N --new $NEW --checkpoint $CK/$SHAPE \
      $SHAPES_ARG ${ENGINE_ARGS:-} --json "$OUT/engine-$SHAPE.json" 2>&1 | tee "$OUT/engine-$SHAPE.log" | grep -v "^Loading weights"; then
    log "compiled engine run failed: eager"
    COMPILE=""
    $PYTHON bench/inference_gpu.py --shape $SHAPE --device $DEVICE --n $N --new $NEW --checkpoint $CK/$SHAPE --eager \
      ${ENGINE_ARGS:-} --json "$OUT/engine-eager-$SHAPE.json" 2>&1 | tee "$OUT/engine-eager-$SHAPE.log" | grep -v "^Loading weights"
  fi
fi
if [[ $STEPS == *stack* ]]; then
  log "whole stack: $SHAPE ${COMPILE:-(eager)}"
  DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/postgres REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
    $PYTHON bench/inference_stack.py $N $NEW --shape $SHAPE --checkpoint $CK/$SHAPE --device $DEVICE $COMPILE $SHAPES_ARG \
      --prompt 640 ${STACK_ARGS:-} --json "$OUT/stack-$SHAPE.json" 2>&1 | tee "$OUT/stack-$SHAPE.log" \
      | grep -v -E "^Loading weights|^ *$|^[- ]*\*|\.> |SecurityWarning|superuser|--uid|User information|_warn_or_raise"
fi
log "done"
