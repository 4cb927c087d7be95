#!/bin/bash
# Development aid, not part of the test run: accepts sptd's command line and
# serves the same target with tgtd (Debian package tgt, NOT a test
# dependency), so the integration tests can be checked against a reference
# target. tgt keeps LUN 0 for itself, so sptd's LUN n is tgt's LUN n+1:
#   apt-get install tgt
#   SPTD=$PWD/tests/integration/tgtd-shim.sh SPT_LUN_BASE=1 SPT_NO_CONTROL=1 \
#       bash tests/integration/test_qemu.sh
# Each instance uses its own tgtd control port; SIGTERM/SIGINT stop it.
set -u
listens=(); target=iqn.2026-11.org.spt:target0; luns=()
die() { echo "sptd: $*" >&2; exit 2; }
parse_size() { local s=$1 n m=1; [[ $s =~ ^([0-9]+)([KkMmGgTt]?)$ ]] || return 1; n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in K|k) m=1024;; M|m) m=$((1<<20));; G|g) m=$((1<<30));; T|t) m=$((1<<40));; esac; echo $((n*m)); }
while [ $# -gt 0 ]; do
  case $1 in
    --listen) [ $# -ge 2 ] || die "--listen needs ADDR:PORT"; listens+=("$2"); shift 2;;
    --target) target=$2; shift 2;;
    --lun) [ $# -ge 2 ] || die "--lun needs PATH"; luns+=("$2"); shift 2;;
    --control|--log-level|--login-timeout|--nop-interval|--nop-timeout|--logout-grace|--max-sessions) shift 2;;
    *) die "unknown option '$1'";;
  esac
done
[ ${#listens[@]} -gt 0 ] || listens=(0.0.0.0:3260)
specs=()
for l in "${luns[@]}"; do
  IFS=, read -ra parts <<<"$l"; path=${parts[0]}; size=; bs=512; ro=0
  for p in "${parts[@]:1}"; do
    case $p in
      size=*) size=$(parse_size "${p#size=}") || die "--lun $l: bad size '${p#size=}'";;
      block_size=*) bs=${p#block_size=}; [ "$bs" = 512 ] || [ "$bs" = 4096 ] || die "--lun $l: block_size must be 512 or 4096, not '$bs'";;
      ro) ro=1;;
      *) die "--lun $l: unknown option '$p'";;
    esac
  done
  if [ -n "$size" ]; then truncate -s "$size" "$path" || die "cannot size $path"; fi
  [ -f "$path" ] || die "$path does not exist and no size= given"
  specs+=("$path $bs $ro")
done
if [ ${#luns[@]} -eq 0 ]; then
  [ -f spt-lun0.img ] || truncate -s 1G spt-lun0.img
  echo "sptd: no --lun given: using 1 GiB sparse $(pwd)/spt-lun0.img as LUN 0 of $target" >&2
  specs+=("$(pwd)/spt-lun0.img 512 0")
fi
cp=$(( ($$ % 20000) + 2000 ))
dummy=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
tgtd -f -C $cp --iscsi portal=127.0.0.1:$dummy &
tpid=$!
trap 'tgtadm -C $cp --op delete --mode system --force >/dev/null 2>&1; sleep 0.2; kill -9 $tpid 2>/dev/null; wait $tpid 2>/dev/null; exit 0' TERM INT
for i in $(seq 50); do tgtadm -C $cp --op show --mode sys >/dev/null 2>&1 && break; sleep 0.1; done
T="tgtadm -C $cp --lld iscsi"
$T --op new --mode target --tid 1 -T "$target" || die "tgtadm target"
n=1
for s in "${specs[@]}"; do read -r path bs ro <<<"$s"
  $T --op new --mode logicalunit --tid 1 --lun $n -b "$path" --blocksize "$bs" || die "tgtadm lun"
  [ "$ro" = 1 ] && $T --op update --mode logicalunit --tid 1 --lun $n --params readonly=1
  n=$((n+1))
done
$T --op bind --mode target --tid 1 -I ALL || die "bind"
for l in "${listens[@]}"; do $T --op new --mode portal --param portal="$l" || die "portal $l"; done
$T --op delete --mode portal --param portal=127.0.0.1:$dummy
echo "sptd(shim): serving $target on ${listens[*]}" >&2
wait $tpid
