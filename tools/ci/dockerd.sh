#!/bin/bash
# Start exactly one dockerd if none answers (a second dockerd deletes the
# first one's docker0 bridge). Idempotent. Logs to /var/log/cosyvoice-dockerd.log.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if pgrep -x dockerd >/dev/null; then
  echo "dockerd: a dockerd runs but does not answer yet; waiting"
else
  echo "dockerd: starting"
  setsid dockerd >/var/log/cosyvoice-dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd: no answer after 60 s; see /var/log/cosyvoice-dockerd.log" >&2
tail -20 /var/log/cosyvoice-dockerd.log >&2 || true
exit 1
