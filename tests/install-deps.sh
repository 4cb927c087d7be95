#!/bin/bash
# Install what building spt and running tests/run.sh need (Debian 12).
# Idempotent: when every package is already installed it changes nothing and
# needs no network. Runs as root, or through sudo when that is available.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config                    # compiler, make
	liburing-dev libisal-dev libssl-dev           # io_uring, CRC32C, libcrypto
	libconfig-dev                                 # sptd --config
	libmicrohttpd-dev                             # sptd --metrics (Prometheus endpoint)
	libcmocka-dev                                 # unit tests
	libiscsi-dev libiscsi-bin                     # libiscsi, iscsi-test-cu, iscsi-ls, iscsi-inq ...
	qemu-utils qemu-block-extra                   # qemu-img, qemu-io and their iSCSI driver
	python3                                       # test_badinput.py, helpers
	iproute2 procps coreutils                     # ss, ps; timeout, truncate, stat
	groff-base                                    # test_install.sh: man pages render without warnings
	clang libclang-rt-14-dev                      # libFuzzer harnesses (fuzz/, test_fuzz.sh)
	librbd-dev                                    # --lun rbd: (librbd, librados)
	ceph-mon ceph-osd ceph-common                 # test_rbd.sh: a one-node Ceph cluster on loopback
)

if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null 2>&1; then
	SUDO=(sudo)
else
	echo "install-deps.sh: need root or sudo to install packages" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps.sh: all ${#PACKAGES[@]} packages already installed"
	exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y "${missing[@]}"
