#!/bin/sh
# Rebuilds kdtdrv.sys and kdtdrv.pdb (x64, from kdtdrv.c and unwind.S) and
# kdtdrv_arm64.sys and kdtdrv_arm64.pdb (ARM64, from kdtdrv.c) with clang and
# lld-link (Debian packages clang and lld). The outputs are committed so
# that tests run without the tools; tests also rebuild them when the tools
# are present and check the rebuilt image unwinds the same way.
set -eu
out=${1:-.}
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clang --target=x86_64-pc-windows-msvc -O1 -g -gcodeview -mno-stack-arg-probe \
	-fno-stack-protector -ffreestanding -fasynchronous-unwind-tables -c "$src/kdtdrv.c" -o "$tmp/kdtdrv.obj"
clang --target=x86_64-pc-windows-msvc -c "$src/unwind.S" -o "$tmp/unwind.obj"
lld-link /nologo /driver /subsystem:native /entry:DriverEntry /nodefaultlib \
	/debug /pdb:"$out/kdtdrv.pdb" /pdbaltpath:kdtdrv.pdb /out:"$out/kdtdrv.sys" \
	/timestamp:0x5F000000 /implib:"$tmp/kdtdrv.lib" \
	/export:DriverEntry /export:CallsAsm /export:AsmCallback /export:FloatWork \
	/export:HugeFrame /export:LargeFrame /export:SavesNonVolatiles /export:LeafTouch \
	/export:AsmFramePointer /export:AsmTrapHandler /export:AsmInterrupted \
	/export:AsmInterruptedAt /export:AsmFarSaves /export:LeafTouchAsm \
	"$tmp/kdtdrv.obj" "$tmp/unwind.obj"

clang --target=aarch64-pc-windows-msvc -O1 -g -gcodeview -mno-stack-arg-probe \
	-fno-stack-protector -ffreestanding -fasynchronous-unwind-tables -c "$src/kdtdrv.c" -o "$tmp/kdtdrv_arm64.obj"
lld-link /nologo /machine:arm64 /driver /subsystem:native /entry:DriverEntry /nodefaultlib \
	/debug /pdb:"$out/kdtdrv_arm64.pdb" /pdbaltpath:kdtdrv_arm64.pdb /out:"$out/kdtdrv_arm64.sys" \
	/timestamp:0x5F000001 /implib:"$tmp/kdtdrv_arm64.lib" \
	/export:DriverEntry /export:WithFrameRecord /export:FloatWork /export:HugeFrame \
	/export:LargeFrame /export:SavesNonVolatiles /export:LeafTouch \
	"$tmp/kdtdrv_arm64.obj"
