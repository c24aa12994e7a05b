# Sourced by scripts/test: the tools' tests open the trace and the HTML
# report in headless Chromium, from Debian's package, installed here when it
# is missing. (The tests install speedscope from the npm registry themselves.)
if ! command -v chromium >/dev/null; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
