# Sourced by test.sh and bench.sh: makes sure Debian's PostgreSQL server binaries are installed.
# Tests and benchmarks start their own throwaway cluster on loopback and remove it after.
ensure_postgresql() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing Debian's postgresql"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
  fi
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "postgresql could not be installed" >&2; return 1; }
}
