#!/usr/bin/env bash
# Build a real Kubernetes API server for the tests of `serve --provider kubernetes`:
# apiextensions-apiserver, and our test build of it (scripts/kube-test-apiserver/main.go: CRD
# OpenAPI and /apis discovery on, so kubectl validates and discovers), from Debian sid's Go
# source packages; and fetch etcd and kubectl. docs/kubernetes.md says what it serves and what not.
#
#   scripts/kube-apiserver.sh         # last stdout line: the bin directory (make setup records it
#                                     # in target/kube-bin for the tests)
#
# Everything lives under ${TOLLGATE_KUBE_CACHE:-/var/cache/tollgate-kube} (outside any git clone):
#   apt/            private apt configuration, lists and state (the system's /etc/apt is never touched)
#   debs/           downloaded .deb files (reused across runs)
#   gocache/        Go build cache (a rebuild after a key change relinks quickly)
#   work/root/      the extracted packages, without tests/docs (removed after a build unless
#                   TOLLGATE_KUBE_KEEP_ROOT=1; ~1.8 GB while it exists)
#   <sha256>/bin/   apiextensions-apiserver, tollgate-test-apiserver, etcd, kubectl
#   <sha256>/key.txt  the cache key: sorted Package=Version lines of every downloaded deb, plus the
#                   sha256 of our custom main.go (a change to it must rebuild too)
# Env: TOLLGATE_KUBE_MIRROR (default: the host the machine's own sources use, else deb.debian.org),
#      TOLLGATE_KUBE_SKIP_UPDATE=1 (reuse existing lists), TOLLGATE_KUBE_KEEP_ROOT=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${TOLLGATE_KUBE_CACHE:-/var/cache/tollgate-kube}
MAIN_SRC=$HERE/kube-test-apiserver/main.go
T0=$(date +%s%N)

log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '==> [%4d.%ds] %s\n' $((ms/1000)) $((ms%1000/100)) "$*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb tar sha256sum flock; do
    command -v "$tool" >/dev/null || die "missing $tool"
done
[[ -f $MAIN_SRC ]] || die "missing $MAIN_SRC"

# One run at a time per cache (they share work/root and the apt state).
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 3600 9 || die "timed out waiting for $CACHE/.lock"

# ---------------------------------------------------------------- 1. private apt configuration
# Reuse the host of the machine's own Debian mirror (read only), else deb.debian.org.
if [[ -z ${TOLLGATE_KUBE_MIRROR:-} ]]; then
    TOLLGATE_KUBE_MIRROR=$(grep -hoE '(URIs:|^deb) *(\[[^]]*\] *)?https?://[^ ]*/debian/?( |$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -1 || true)
    TOLLGATE_KUBE_MIRROR=${TOLLGATE_KUBE_MIRROR:-http://deb.debian.org/debian}
fi
APT=$CACHE/apt
mkdir -p "$APT"/state/lists/partial "$APT"/cache/archives/partial "$APT"/etc/apt.conf.d \
    "$APT"/etc/preferences.d "$APT"/etc/sources.list.d "$CACHE"/debs "$CACHE"/gocache
touch "$APT"/state/status   # empty dpkg status: nothing counts as installed, so the closure is complete
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$KEYRING] ${TOLLGATE_KUBE_MIRROR%/} sid main" > "$APT"/etc/sources.list.new
mv "$APT"/etc/sources.list.new "$APT"/etc/sources.list
cat > "$APT"/apt.conf <<EOF
Dir::State "$APT/state";
Dir::State::status "$APT/state/status";
Dir::Cache "$APT/cache";
Dir::Etc::sourcelist "$APT/etc/sources.list";
Dir::Etc::sourceparts "$APT/etc/sources.list.d";
Dir::Etc::preferences "$APT/etc/preferences";
Dir::Etc::preferencesparts "$APT/etc/preferences.d";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::CNF::DefaultEnabled "false";
EOF
AC=(-c "$APT/apt.conf")

if [[ ${TOLLGATE_KUBE_SKIP_UPDATE:-0} = 1 && -n $(ls "$APT"/state/lists/*Packages* 2>/dev/null) ]]; then
    log "apt-get update skipped (TOLLGATE_KUBE_SKIP_UPDATE=1)"
else
    log "apt-get update (sid from ${TOLLGATE_KUBE_MIRROR%/})"
    if ! apt-get "${AC[@]}" -q update >/dev/null; then
        [[ -n $(ls "$APT"/state/lists/*Packages* 2>/dev/null) ]] || die "apt-get update failed"
        log "WARNING: apt-get update failed; using the lists from the last successful update"
    fi
fi

# ---------------------------------------------------------------- 2. package list
log "dependency closure of golang-k8s-apiextensions-apiserver-dev"
# Go version: the one sid's golang-go points at (e.g. golang-1.27-go).
GOPKG=$(apt-cache "${AC[@]}" depends golang-go | grep -oE 'golang-1\.[0-9]+-go' | head -1)
[[ -n $GOPKG ]] || die "cannot tell sid's Go version"
GOVER=${GOPKG#golang-}; GOVER=${GOVER%-go}
PKGS=$(
    {
        apt-cache "${AC[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances golang-k8s-apiextensions-apiserver-dev \
            | grep -E '^golang-[^ ]*-dev$'
        echo "$GOPKG"; echo "golang-$GOVER-src"; echo etcd-server; echo kubectl
    } | sort -u)
# Pin exact candidate versions, so the key names exactly what is downloaded.
PINNED=$(apt-cache "${AC[@]}" show --no-all-versions $PKGS \
    | awk '/^Package:/{p=$2} /^Version:/{print p "=" $2}' | sort -u)
NPKG=$(wc -l <<<"$PINNED")
[[ $NPKG -eq $(wc -w <<<"$PKGS") ]] || die "version lookup mismatch ($NPKG vs $(wc -w <<<"$PKGS"))"
log "$NPKG packages (Go $GOVER, $(grep -c -- '-dev=' <<<"$PINNED") golang-*-dev)"

KEYTXT=$(printf '%s\n' "$PINNED" "tollgate-test-apiserver/main.go=$(sha256sum <"$MAIN_SRC" | cut -d' ' -f1)")
KEY=$(sha256sum <<<"$KEYTXT" | cut -d' ' -f1)
OUT=$CACHE/$KEY
BINS=(apiextensions-apiserver tollgate-test-apiserver etcd kubectl)

# ---------------------------------------------------------------- 3. cache hit?
complete() { [[ -f $OUT/ok ]] || return 1; for b in "${BINS[@]}"; do [[ -x $OUT/bin/$b ]] || return 1; done; }
if complete; then
    log "cache hit: $OUT (key $KEY)"
    echo "$OUT/bin"
    exit 0
fi
log "cache miss: key $KEY"

# ---------------------------------------------------------------- 4. download
cd "$CACHE"/debs
log "apt-get download ($NPKG packages)"
# apt-get download skips a file that is already there with the right hash.
apt-get "${AC[@]}" -q download $PINNED >/dev/null 2>download.log || { cat download.log >&2; die "download failed"; }
# The exact file of each pinned package (the epoch's ':' is '%3a' in file names).
DEBS=()
while IFS='=' read -r p v; do
    f=$(ls "${p}_${v//:/%3a}"_*.deb 2>/dev/null | head -1)
    [[ -n $f ]] || die "no deb for $p=$v"
    DEBS+=("$CACHE/debs/$f")
done <<<"$PINNED"
log "downloaded: $(du -ch "${DEBS[@]}" | tail -1 | cut -f1) in ${#DEBS[@]} debs"

# ---------------------------------------------------------------- 5. extract
ROOT=$CACHE/work/root
rm -rf "$ROOT" "$CACHE"/.tmp-*; mkdir -p "$ROOT"
# Like `dpkg-deb -x`, minus what a build never reads (tests, testdata, docs): ~2.4 GB -> see below.
log "dpkg-deb --fsys-tarfile | tar -x into $ROOT (without *_test.go, testdata/, /usr/share/doc)"
for d in "${DEBS[@]}"; do
    dpkg-deb --fsys-tarfile "$d" | tar -x -C "$ROOT" --exclude='*_test.go' --exclude=testdata \
        --exclude=./usr/share/doc --exclude=./usr/share/man
done
log "extracted: $(du -sh "$ROOT" | cut -f1)"

# ---------------------------------------------------------------- 6. build
GOROOT_DIR=$ROOT/usr/lib/go-$GOVER
GOPATH_DIR=$ROOT/usr/share/gocode
[[ -x $GOROOT_DIR/bin/go ]] || die "no go binary in $GOROOT_DIR"
# Our main package goes into the GOPATH tree (GOPATH mode wants packages under src/).
mkdir -p "$GOPATH_DIR"/src/tollgate.test/tollgate-test-apiserver
cp "$MAIN_SRC" "$GOPATH_DIR"/src/tollgate.test/tollgate-test-apiserver/main.go

TMPOUT=$CACHE/.tmp-$KEY.$$
rm -rf "$TMPOUT"; mkdir -p "$TMPOUT"/bin
trap 'rm -rf "$TMPOUT"' EXIT
log "go build (GOPATH mode, $(nproc) cores; a cold build takes several minutes)"
B0=$(date +%s)
(
    cd "$GOPATH_DIR"/src
    env -u GOFLAGS -u GOROOT PATH="$GOROOT_DIR/bin:$PATH" \
        GOROOT="$GOROOT_DIR" GO111MODULE=off GOPATH="$GOPATH_DIR" GOPROXY=off GOTOOLCHAIN=local \
        GOCACHE="$CACHE/gocache" CGO_ENABLED=0 GOFLAGS=-trimpath \
        go build -ldflags='-s -w' -o "$TMPOUT/bin/" \
        k8s.io/apiextensions-apiserver tollgate.test/tollgate-test-apiserver
)
log "go build done in $(( $(date +%s) - B0 )) s"

cp "$ROOT"/usr/bin/etcd "$ROOT"/usr/bin/kubectl "$TMPOUT"/bin/
printf '%s\n' "$KEYTXT" > "$TMPOUT"/key.txt
touch "$TMPOUT"/ok
rm -rf "$OUT"; mv "$TMPOUT" "$OUT"; trap - EXIT
for b in "${BINS[@]}"; do log "$(du -h "$OUT/bin/$b" | cut -f1)  $b"; done

if [[ ${TOLLGATE_KUBE_KEEP_ROOT:-0} != 1 ]]; then
    rm -rf "$ROOT"; log "removed $ROOT (set TOLLGATE_KUBE_KEEP_ROOT=1 to keep it)"
fi
# Drop debs no longer named by the current list.
for f in "$CACHE"/debs/*.deb; do
    [[ " ${DEBS[*]} " == *" $f "* ]] || rm -f "$f"
done
log "done"
echo "$OUT/bin"
