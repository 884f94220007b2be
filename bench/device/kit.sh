#!/usr/bin/env bash
# Builds .gpukit/ here for bench/device/run.sh: what a lent GPU machine lacks to run the whole stack.
# That machine has python3 (3.12) with torch, CUDA and an older transformers, reaches no network
# and has no PostgreSQL, Redis or Django. The kit: wheels for Python 3.12 of our pinned Django
# stack and transformers (our engine needs 5.24's prefill cache API; 5.17 failed tests/ml), and
# this machine's PostgreSQL 15 and Redis binaries with their libraries (x86-64, Debian 12; run
# there with LD_LIBRARY_PATH, never for python). Carry it with the device tool's `carry`:
#   [".gpukit/whl", ".gpukit/sys.tar.xz", ".gpukit/zoneinfo.tar.xz", ".gpukit/testwhl"]   (≈ 58 MiB of the 64 allowed)
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.gpukit/" .git/info/exclude 2>/dev/null || echo "/.gpukit/" >> .git/info/exclude
rm -rf .gpukit && mkdir -p .gpukit/whl .gpukit/sys/lib .gpukit/sys/bin
PLAT=(--python-version 3.12 --implementation cp --only-binary=:all:)
for n in 5 17 24 27 28 31 34 35; do PLAT+=(--platform "manylinux_2_${n}_x86_64"); done
PLAT+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q "${PLAT[@]}" -d .gpukit/whl -c requirements/constraints.txt \
  Django djangorestframework drf-spectacular channels channels-redis "celery[redis]" redis "psycopg[binary]" \
  psycopg-pool dj-database-url django-guardian django-otp segno django-axes whitenoise pydicom openpyxl \
  pynetdicom django-csp RapidFuzz transformers regex
# What the device image already holds (its package list: ../.library/device/KINDS.md), and
# huggingface_hub 2 (the image's 1.33 satisfies transformers): left out to stay under 64 MiB.
( cd .gpukit/whl && rm -f numpy-* hf_xet-* pyyaml-* pygments-* rich-* markdown_it_py-* mdurl-* attrs-* idna-* \
  packaging-* typing_extensions-* anyio-* h11-* six-* python_dateutil-* filelock-* fsspec-* tqdm-* \
  safetensors-* shellingham-* typer-* click-8* tokenizers-* pydantic* annotated_* typing_inspection* \
  huggingface_hub* httpx2* httpcore2* truststore* )
# The GPU tests (`pytest -m gpu tests/ml`: run.sh's `gputest` step) need pytest-django beside the image's pytest.
mkdir -p .gpukit/testwhl
python3 -m pip download -q --no-deps --only-binary=:all: -d .gpukit/testwhl -c requirements/constraints.txt pytest-django
PGBIN=/usr/lib/postgresql/15/bin
mkdir -p .gpukit/sys/usr/lib/postgresql/15/bin .gpukit/sys/usr/share/postgresql
cp $PGBIN/{postgres,initdb,pg_ctl,pg_isready} .gpukit/sys/usr/lib/postgresql/15/bin/
mkdir -p .gpukit/sys/usr/lib/postgresql/15/lib
cp /usr/lib/postgresql/15/lib/{plpgsql.so,dict_snowball.so,libpqwalreceiver.so,*_and_*.so} .gpukit/sys/usr/lib/postgresql/15/lib/
cp -r /usr/share/postgresql/15 .gpukit/sys/usr/share/postgresql/
rm -rf .gpukit/sys/usr/share/postgresql/15/man
find .gpukit/sys/usr/share/postgresql/15/extension -type f ! -name "plpgsql*" -delete
cp /usr/bin/redis-server .gpukit/sys/bin/
# Their libraries, but not glibc's own nor libstdc++/libgcc (the device's newer ones serve).
for b in $PGBIN/{postgres,initdb,pg_ctl,pg_isready} /usr/bin/redis-server; do ldd "$b"; done | awk '/=>/{print $3}' \
  | sort -u | grep -v -E 'libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|ld-linux|libresolv|libstdc|libgcc_s' \
  | xargs -I{} cp -L {} .gpukit/sys/lib/
tar -C .gpukit/sys -cf - . | xz -T0 -6 > .gpukit/sys.tar.xz && rm -rf .gpukit/sys
tar -C /usr/share -cf - zoneinfo | xz -T0 -6 > .gpukit/zoneinfo.tar.xz
du -sh .gpukit/whl .gpukit/testwhl .gpukit/*.xz
