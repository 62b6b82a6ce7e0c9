#!/usr/bin/env bash
# systemd Type=notify: tallyd sends READY=1 on $NOTIFY_SOCKET once its control
# socket exists and answers, and STOPPING=1 when it starts to drain. The test
# plays systemd's part with a Unix datagram socket (no systemd needed).
. "$(dirname "$0")/lib.sh"

python3 - "$tallyd" "$tallyctl" "$work" "${eal_test[@]}" <<'PY'
import os, signal, socket, subprocess, sys
tallyd, tallyctl, work, eal = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ctl = os.path.join(work, "c.sock")
ns = os.path.join(work, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(ns)
s.settimeout(60)
env = dict(os.environ, NOTIFY_SOCKET=ns)
log = open(os.path.join(work, "tallyd.log"), "w")
p = subprocess.Popen([tallyd, "--port=net_null0", "--table_rows=1024", "--dedup_capacity=1024",
                      "--sqlite_path=" + os.path.join(work, "t.db"), "--ctl_socket=" + ctl,
                      "--", "-l", "0-1"] + eal, env=env, stderr=log)
def fail(msg):
    p.kill(); p.wait(); print(open(os.path.join(work, "tallyd.log")).read())
    sys.exit("FAIL: " + msg)
def expect(word):
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        fail("no %s from tallyd within 60 s" % word)
    if word not in msg.split("\n"):
        fail("expected %s, got %r" % (word, msg))
    return msg
expect("READY=1")
if not os.path.exists(ctl):
    fail("READY=1 came before the control socket existed")
st = subprocess.run([tallyctl, "-s", ctl, "status"], capture_output=True, text=True)
if st.returncode != 0:
    fail("tallyctl status failed after READY=1: " + st.stderr)
print("ok: READY=1 arrived, control socket answers")
p.send_signal(signal.SIGTERM)
expect("STOPPING=1")
print("ok: STOPPING=1 arrived after SIGTERM")
if p.wait(timeout=60) != 0:
    fail("tallyd exited with %d" % p.returncode)
PY
echo "PASS sd-notify"
