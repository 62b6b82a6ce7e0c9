# Helpers for the metrics, status page and watchdog tests (after lib.sh): free
# ports, HTTP GETs, Prometheus API queries and tallyctl JSON fields, in python3
# so the tests need no curl or jq (Debian's python3 itself: a shim in PATH can take
# a second to start on a loaded machine).

# free_port: a TCP port on 127.0.0.1 nobody listens on now
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_get URL: the body, or exit 1
http_get() {
  /usr/bin/python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"
}

# prom_query PORT EXPR: the value of an instant query's single sample, "" if none
prom_query() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:%s/api/v1/query?%s" % (sys.argv[1], urllib.parse.urlencode({"query": sys.argv[2]}))
try:
    r = json.load(urllib.request.urlopen(url, timeout=10))
except Exception:
    sys.exit(0)
res = r.get("data", {}).get("result", [])
if len(res) == 1:
    v = res[0]["value"][1]
    print(int(float(v)) if float(v).is_integer() else v)
PY
}

# jfield FILE PATH...: a field of a JSON file (path of keys and array indexes)
jfield() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)
PY
}

# wait_ready SOCKET LOG: until tallyd's control socket answers
wait_ready() {
  for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done
  cat "$2"; fail "tallyd did not become ready"
}

# metrics_port SOCKET: the port tallyd's metrics server is bound to
metrics_port() {
  "$tallyctl" -s "$1" status --json > "$work/status-port.json"
  jfield "$work/status-port.json" metrics_addr | sed 's/.*://'
}
