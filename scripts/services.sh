#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are up: start them when
# they are installed here and stopped. Prints one line per service; exits non-zero if one
# cannot be reached.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG || (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }

wait_for() { # name check-function
  for _ in $(seq 1 30); do "$2" && return 0; sleep 0.5; done
  return 1
}

status=0
if pg_up; then
  echo "postgresql: up on 127.0.0.1:5432"
else
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start >/dev/null 2>&1 || true
    done
  fi
  if wait_for postgresql pg_up; then echo "postgresql: started on 127.0.0.1:5432"
  else echo "postgresql: NOT reachable on 127.0.0.1:5432 (install it or set DATABASE_URL)"; status=1; fi
fi

if redis_up; then
  echo "redis: up on 127.0.0.1:6379"
else
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /tmp/ibdata-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/ibdata-redis --logfile /tmp/ibdata-redis/redis.log >/dev/null 2>&1 || true
  fi
  if wait_for redis redis_up; then echo "redis: started on 127.0.0.1:6379"
  else echo "redis: NOT reachable on 127.0.0.1:6379 (install it or set REDIS_URL)"; status=1; fi
fi
# The database the deployed settings name (tests create their own test_ database).
if [ $status -eq 0 ] && command -v psql >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ibdata'" 2>/dev/null | grep -q 1 \
    || createdb -h 127.0.0.1 -U postgres ibdata 2>/dev/null || true
fi
exit $status
