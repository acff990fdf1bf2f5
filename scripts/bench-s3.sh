# Section "s3" of scripts/bench.sh (issue 13): a 1000-tag tree loaded into
# moto's S3 server (from .venv, made by scripts/install-deps.sh), one tag in
# ten deleted so that there is garbage; then, on the same bucket, regkit gc
# --dry-run, verify --fast and ls against docker-registry garbage-collect
# --dry-run on its s3 driver: time, and requests (moto logs a line per
# request); and select S3 -> disk against a parallel download of the same
# keys (boto3, 16 threads). moto keeps everything in memory: it is started
# and loaded afresh on every run of the section.

s3_requests() { wc -l < "$1"; }

section_s3() {
  local tags=1000 tree=$WORK/tree-s3-1000 log=$WORK/moto.log port cfg=$WORK/s3-config.yml
  local venv=$PWD/.venv out=$WORK/s3-out dl=$WORK/s3-download
  echo "s3: $tags tags in moto" >&2
  [ -x "$venv/bin/moto_server" ] || { echo "  no $venv/bin/moto_server: run scripts/install-deps.sh" >&2; return 1; }
  [ -d "$tree" ] || python3 scripts/fixture.py generate bench --tags "$tags" "$tree" >&2
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
  local moto=$!
  # shellcheck disable=SC2064
  trap "kill $moto 2>/dev/null" RETURN
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.2; done
  curl -s -f -X PUT "http://127.0.0.1:$port/bench" > /dev/null
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_REGION=us-east-1
  local root=s3://bench/reg
  local s e
  s=$(now)
  "$REGKIT" -q select "$tree" "$root" 2>/dev/null
  e=$(now)
  printf '  %-34s %8.1f s  (%d requests)\n' "load: regkit select disk -> S3" "$(echo "$e - $s" | bc -l)" "$(s3_requests "$log")" >&2
  "$REGKIT" ls "$root" --json |
    python3 -c 'import json, sys; print("\n".join(e["name"] for e in json.load(sys.stdin)[::10]))' |
    xargs "$REGKIT" -q delete "$root" --manifest
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  s3: {region: us-east-1, bucket: bench, regionendpoint: "http://127.0.0.1:%s", accesskey: k, secretkey: s, secure: false, v4auth: true, rootdirectory: /reg}\n  delete: {enabled: true}\nhttp: {addr: 127.0.0.1:0}\n' \
    "$port" > "$cfg"

  # One command, timed, with the requests it sent.
  declare -A REQ
  s3_run() {
    local name=$1 cmd=$2 before after
    before=$(s3_requests "$log")
    measure "$name" 1 ":" "$cmd"
    after=$(s3_requests "$log")
    REQ[$name]=$((after - before))
    printf '  %-34s %8d requests\n' "$name" "${REQ[$name]}" >&2
  }
  s3_run "regkit gc --dry-run (s3)" "$REGKIT -q gc $root --dry-run"
  s3_run "regkit verify --fast (s3)" "$REGKIT -q verify $root --fast"
  s3_run "regkit ls (s3)" "$REGKIT ls $root"
  s3_run "docker-registry garbage-collect (s3)" "env -u AWS_CA_BUNDLE docker-registry garbage-collect --dry-run $cfg"
  local ours theirs
  ours=$("$REGKIT" gc "$root" --dry-run --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["freed_blobs"])')
  theirs=$(env -u AWS_CA_BUNDLE docker-registry garbage-collect --dry-run "$cfg" 2>/dev/null |
    sed -n 's/^[0-9]* blobs marked, \([0-9]*\) blobs and .*/\1/p')
  echo "  blobs eligible for deletion: regkit $ours, docker-registry $theirs" >&2
  peak "regkit gc --dry-run (s3)" ":" "$REGKIT -q gc $root --dry-run"

  # select S3 -> disk against boto3 fetching the same keys, 16 threads.
  measure "regkit select S3 -> disk" 3 "rm -rf $out" "$REGKIT -q select $root $out"
  measure "boto3 download, 16 threads" 3 "rm -rf $dl" "$venv/bin/python - <<'PY'
import boto3, os, concurrent.futures as cf
s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'], aws_access_key_id='k', aws_secret_access_key='s', region_name='us-east-1')
keys = [o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket='bench', Prefix='reg/docker/registry/v2/') for o in p.get('Contents', [])]
def get(k):
    path = os.path.join('$dl', k)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s3.download_file('bench', k, path)
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(get, keys))
PY"
  rm -rf "$out" "$dl"
  unset AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION

  local theirs_t=${T[docker-registry garbage-collect (s3)]} theirs_r=${REQ[docker-registry garbage-collect (s3)]} r q n
  for n in "regkit gc --dry-run (s3)" "regkit verify --fast (s3)" "regkit ls (s3)"; do
    r=$(ratio "$theirs_t" "${T[$n]}")
    q=$(ratio "$theirs_r" "${REQ[$n]}")
    row "${n% (s3)} vs docker-registry garbage-collect --dry-run (S3)" "${r}x faster, ${q}x fewer requests (${REQ[$n]} vs $theirs_r)" ">= 10x, >= 20x" \
      "$(verdict "$r" '>=' 10) / $(verdict "$q" '>=' 20)"
  done
  row "gc --dry-run on S3: blobs eligible (regkit, docker-registry)" "$ours, $theirs" "equal" \
    "$([ "$ours" = "$theirs" ] && echo met || echo MISSED)"
  r=$(ratio "${T[regkit select S3 -> disk]}" "${T[boto3 download, 16 threads]}")
  row "select S3 -> disk vs boto3 download of the same keys (16 threads)" "${r}x" "<= 2x" "$(verdict "$r" '<=' 2)"
  row "peak memory (gc --dry-run on S3)" "$((MEM[regkit gc --dry-run (s3)] / 1024)) MB" "—" ""
}
