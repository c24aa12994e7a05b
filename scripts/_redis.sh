# Sourced by scripts/test and scripts/demo: the Celery tests and the
# cross-service example start their own Redis broker on 127.0.0.1, from
# Debian's package, installed here when it is missing.
if ! command -v redis-server >/dev/null; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null
fi
