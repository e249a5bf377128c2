#!/bin/sh
# Installs the Debian packages among "$@" that are not installed yet.
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends $missing || {
	$sudo apt-get update && $sudo apt-get install -y --no-install-recommends $missing
}
