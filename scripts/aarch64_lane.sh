#!/usr/bin/env bash
# CI's aarch64 lane: the wheel CI built, installed for aarch64 Linux (numpy + onnxruntime wheels from PyPI,
# no torch) and run on Debian's arm64 Python under QEMU user-mode emulation: the runtime's torch-free tests
# (tests/runtime/test_portable_*.py), info, verify, sample, reconstruct and interpolate; then every output is compared
# with what the x86 install computes, within the model dir's own tolerances (scripts/aarch64_outputs.py).
#
#   scripts/aarch64_lane.sh WHEEL X86_PYTHON
#
# WHEEL: the edgevae wheel. X86_PYTHON: the python of a venv holding that wheel's base install (.ci/run's
# clean venv): it computes the x86 side and runs pip. Optional environment:
#   EDGEVAE_AARCH64_CACHE  downloads, kept between runs and keyed by versions (default ~/.cache/edgevae-aarch64)
#   QEMU_AARCH64           the emulator (default qemu-aarch64-static, apt-get installed when absent)
#   AARCH64_PREFIX         a folder holding an arm64 usr/bin/python3.11 (default: Debian's arm64 packages,
#                          unpacked into the cache); the lane writes its proc/cpuinfo
#   AARCH64_WHEELHOUSE     a folder of aarch64 wheels to install from, offline (default: PyPI, cached)
# A missing or wrong one of these ends the lane with one line saying which, and exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PY=3.11  # bookworm's python3; the onnxruntime and numpy wheels must exist for it
# Emulated CPUs: the boards people run edgevae on, and every feature QEMU emulates. onnxruntime picks its
# kernels by these features (and on the A53 by the core itself, read from /proc/cpuinfo):
#   cortex-a53  Raspberry Pi 3, Zero 2 W: Advanced SIMD only, in-order core kernels
#   cortex-a72  Raspberry Pi 4: Advanced SIMD, no dot product
#   cortex-a76  Raspberry Pi 5: dot product (int8) and fp16 arithmetic
#   max         everything QEMU 7.2 emulates: SVE2, i8mm, bf16, SME
CPUS="cortex-a53 cortex-a72 cortex-a76 max"
MAIN_CPU=cortex-a76  # runs the commands and the tests too (max's SVE and SME emulation is 3-6x slower)

die() { died=1; echo "aarch64 lane: $*" >&2; exit 1; }
start=$(date +%s)
at() { echo "[$(($(date +%s) - start)) s]"; }

[ $# -eq 2 ] || die "usage: scripts/aarch64_lane.sh WHEEL X86_PYTHON"
wheel=$1 x86py=$2
[ -f "$wheel" ] || die "no wheel at $wheel"
[ -x "$x86py" ] || die "no x86 python at $x86py"
cache=${EDGEVAE_AARCH64_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/edgevae-aarch64}
mkdir -p "$cache"
work=$(mktemp -d)
step=setup
finish() {  # a step that fails shows its own output (verify's table, pytest's report); this line names it
  local status=$?
  rm -rf "$work"
  if [ "$status" -ne 0 ] && [ -z "${died:-}" ]; then echo "aarch64 lane: failed in $step (exit $status)" >&2; fi
}
trap finish EXIT

# --- the emulator
if [ -n "${QEMU_AARCH64:-}" ]; then
  qemu=$(command -v "$QEMU_AARCH64") || die "emulator $QEMU_AARCH64 not found (QEMU_AARCH64)"
else
  qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
  if [ -z "$qemu" ]; then
    apt-get install -y -qq qemu-user-static >"$work/apt.log" 2>&1 \
      || { apt-get update -qq >>"$work/apt.log" 2>&1 && apt-get install -y -qq qemu-user-static >>"$work/apt.log" 2>&1; } || true
    qemu=$(command -v qemu-aarch64-static || true)
    [ -n "$qemu" ] || die "no qemu-aarch64 emulator, and apt-get install qemu-user-static failed: $(tail -1 "$work/apt.log")"
  fi
fi

# --- an arm64 Python: Debian's python$PY and the libraries it and onnxruntime load, as :arm64 packages
is_aarch64_elf() { [ "$(od -An -tx1 -j0 -N4 "$1" 2>/dev/null | tr -d ' ')$(od -An -tx1 -j18 -N2 "$1" 2>/dev/null | tr -d ' ')" = 7f454c46b700 ]; }
if [ -n "${AARCH64_PREFIX:-}" ]; then
  prefix=$AARCH64_PREFIX
else
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-cache policy "python$PY:arm64" 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get update -qq >/dev/null 2>&1 || true
  packages=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
               --no-enhances "python$PY:arm64" libstdc++6:arm64 2>/dev/null | grep -E '^[a-z0-9.+-]+:arm64$' | sort -u || true)
  [ -n "$packages" ] || die "Debian's apt sources have no python$PY:arm64 (dpkg --add-architecture arm64 && apt-get update)"
  uris() { apt-get download --print-uris $packages 2>/dev/null | awk '{print $2}' | sort; }
  debs=$(uris)
  [ -n "$debs" ] || { apt-get update -qq >/dev/null 2>&1 || true; debs=$(uris); }
  prefix=$cache/prefix-$(echo "$debs" | sha256sum | cut -c1-16)
  if [ ! -f "$prefix/.complete" ]; then
    mkdir -p "$cache/debs"
    missing=$(for f in $debs; do [ -f "$cache/debs/$f" ] || echo "${f%%_*}:arm64=$(echo "$f" | cut -d_ -f2 | sed 's/%3a/:/')"; done)
    if [ -n "$missing" ]; then
      (cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root $missing >"$work/apt.log" 2>&1) \
        || die "apt-get download of the arm64 Python failed: $(grep -E '^E:' "$work/apt.log" | head -1)"
    fi
    rm -rf "$prefix.tmp" && mkdir -p "$prefix.tmp"
    for f in $debs; do dpkg -x "$cache/debs/$f" "$prefix.tmp"; done
    touch "$prefix.tmp/.complete" && rm -rf "$prefix" && mv "$prefix.tmp" "$prefix"
  fi
fi
python_arm=$prefix/usr/bin/python$PY
[ -e "$python_arm" ] || die "no arm64 Python at $python_arm"
is_aarch64_elf "$(readlink -f "$python_arm")" || die "$python_arm is not an aarch64 executable"

# --- aarch64 wheels of the versions the x86 venv holds
read -r ort_v np_v < <("$x86py" -c 'import importlib.metadata as m; print(m.version("onnxruntime"), m.version("numpy"))') \
  || die "$x86py has no onnxruntime and numpy installed"
key=ort$ort_v-np$np_v-cp${PY/./}
site=$cache/site-$key
pins=("onnxruntime==$ort_v" "numpy==$np_v" pytest)
platform=(--platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --python-version "$PY" --only-binary=:all:)
if [ -n "${AARCH64_WHEELHOUSE:-}" ]; then
  site=$work/site wheels=$AARCH64_WHEELHOUSE
else
  wheels=$cache/wheels-$key
  if [ ! -f "$site/.complete" ] && [ ! -f "$wheels/.complete" ]; then
    "$x86py" -m pip download -q -d "$wheels" "${platform[@]}" "${pins[@]}" >"$work/pip.log" 2>&1 \
      || die "no aarch64 wheel of onnxruntime==$ort_v or numpy==$np_v for Python $PY: $(grep -E '^ERROR' "$work/pip.log" | head -1)"
    touch "$wheels/.complete"
  fi
fi
if [ ! -f "$site/.complete" ]; then
  rm -rf "$site.tmp"
  "$x86py" -m pip install -q --no-index --find-links "$wheels" --target "$site.tmp" "${platform[@]}" "${pins[@]}" \
    >"$work/pip.log" 2>&1 \
    || die "no aarch64 wheel of onnxruntime==$ort_v, numpy==$np_v or pytest for Python $PY in $wheels: $(grep -E '^ERROR' "$work/pip.log" | head -1)"
  touch "$site.tmp/.complete" && rm -rf "$site" && mv "$site.tmp" "$site"
fi
"$x86py" -m pip install -q --no-deps --target "$work/edgevae" "$wheel" >"$work/pip.log" 2>&1 \
  || die "pip could not install $wheel: $(grep -E '^ERROR' "$work/pip.log" | head -1)"

# --- running under the emulator
# qemu-user looks up absolute paths inside the prefix first. onnxruntime's cpuinfo library reads
# /proc/cpuinfo and dies (SIGSEGV) on the host's x86 one, so the prefix gets an ARM one: one block per
# possible CPU, with the MIDR fields of the emulated core (QEMU's own for max, whose implementer 0 makes
# onnxruntime warn "Unknown CPU vendor").
write_cpuinfo() {
  local midr core
  case $1 in
    cortex-a53) midr="0x41 0x0 0xd03 4" ;; cortex-a72) midr="0x41 0x0 0xd08 3" ;;
    cortex-a76) midr="0x41 0x4 0xd0b 1" ;; max) midr="0x00 0x0 0x051 0" ;;
  esac
  set -- $midr
  mkdir -p "$prefix/proc"
  for core in $(seq 0 "$(sed 's/.*[-,]//' /sys/devices/system/cpu/possible)"); do
    printf 'processor\t: %s\nBogoMIPS\t: 50.00\nCPU implementer\t: %s\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$core" "$@"
  done >"$prefix/proc/cpuinfo"
}
arm() {  # arm CPU ARGS...: python ARGS on the emulated CPU, with only the lane's packages on its path
  local cpu=$1; shift
  "$qemu" -cpu "$cpu" -L "$prefix" -E "PYTHONPATH=$work/edgevae:$site" -E "XDG_CACHE_HOME=$work/xdg" -E PYTHONDONTWRITEBYTECODE=1 \
    "$python_arm" -P "$@"
}
x86() { XDG_CACHE_HOME=$work/xdg "$x86py" -P "$@"; }  # -P: the repo's edgevae/ never shadows the wheel's

write_cpuinfo "$MAIN_CPU"
where=$(arm "$MAIN_CPU" -c 'import platform, edgevae.runtime as r; print(platform.machine(), r.__file__)' 2>&1) \
  || die "$qemu could not run $python_arm with onnxruntime: $(echo "$where" | tail -1)"
case $where in "aarch64 $work/edgevae/"*) ;; *) die "the emulated Python is not aarch64 running the wheel: $where" ;; esac

commands() {  # commands RUNNER CPU OUT: the runtime's commands, their outputs kept for the comparison
  local run=("$1" ${2:+"$2"}) out=$3
  "${run[@]}" -m edgevae info
  "${run[@]}" -m edgevae verify --variant all
  "${run[@]}" -m edgevae sample --n 64 --seed 0 --out "$out/cmd.sample.png"
  "${run[@]}" -m edgevae sample --n 64 --seed 0 --out "$out/cmd.sample.npy"
  "${run[@]}" -m edgevae reconstruct --input "$work/images.npy" --out "$out/cmd.reconstruct.npy"
  "${run[@]}" -m edgevae reconstruct --input "$work/images.npy" --seed 1 --out "$out/cmd.reconstruct-seed1.npy"
  "${run[@]}" -m edgevae interpolate --input "$work/images.npy" --a 0 --b 7 --steps 8 --out "$out/cmd.interpolate.npy"
}

step="the x86 side"
echo "== x86 side: $("$x86py" -c 'import platform; print(platform.machine())'), the clean venv's install $(at)"
x86 -c 'import shutil, sys; from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR as d; shutil.copy(d / "golden.encoder.input.npy", sys.argv[1])' \
  "$work/images.npy"  # the shipped golden images: 8 of the model's own kind
mkdir -p "$work/x86"
commands x86 "" "$work/x86"
x86 scripts/aarch64_outputs.py write "$work/x86"

for cpu in $CPUS; do
  echo "== aarch64 under QEMU, -cpu $cpu $(at)"
  write_cpuinfo "$cpu"
  if [ "$cpu" = "$MAIN_CPU" ]; then
    mkdir -p "$work/$cpu"
    step="the commands on aarch64 $cpu"
    commands arm "$cpu" "$work/$cpu"
    step="the portable runtime tests on aarch64 $cpu"
    arm "$cpu" -m pytest -p no:cacheprovider -q "$repo/tests/runtime/test_portable_cli.py" "$repo/tests/runtime/test_portable_runtime.py"
  fi
  step="the goldens and outputs on aarch64 $cpu"
  # Every variant's goldens (as verify does), then the graphs' outputs; SVE and SME emulation is 3-6x
  # slower than NEON's, so max runs the golden inputs alone.
  arm "$cpu" "$repo/scripts/aarch64_outputs.py" write "$work/$cpu" $([ "$cpu" = max ] && echo --inputs 8)
done

step="the comparison with x86"
echo "== aarch64 outputs vs x86 $(at)"
x86 scripts/aarch64_outputs.py compare "$work/x86" $(for cpu in $CPUS; do echo "$work/$cpu"; done)
times >"$work/times"  # in this shell (a subshell's children are not the lane's): user and system CPU time
cpu_time=$(tail -1 "$work/times")
echo "aarch64 lane: passed in $(($(date +%s) - start)) s wall, ${cpu_time/ / user + } system CPU" \
  "(emulated CPUs: $CPUS; onnxruntime $ort_v, numpy $np_v, Python $PY)"
