# Shared helpers for corpora/<name>/fetch. Sourced, not run.
#
# Every corpus lives outside the repository, in
#   ${RASD_CACHE:-${XDG_CACHE_HOME:-~/.cache}/rasd}/corpora/<name>/
# with the extracted text under data/ and a file FETCHED recording what was fetched. A fetch
# extracts into a temporary directory and renames it into place, so a killed fetch never leaves
# a half corpus that looks complete; a completed corpus is left alone (idempotent).
set -euo pipefail

rasd_cache=${RASD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rasd}

# corpus_dir NAME -> prints the corpus directory
corpus_dir() { echo "$rasd_cache/corpora/$1"; }

# corpus_done NAME -> exit status 0 when the corpus is complete
corpus_done() { [ -f "$(corpus_dir "$1")/FETCHED" ] && [ -d "$(corpus_dir "$1")/data" ]; }

# debian_fetch NAME PACKAGE... : apt-get download each package (the version apt's lists offer),
# check it with dpkg-deb, extract all into data/. No root needed except for `apt-get update`
# when the package lists are missing.
debian_fetch() {
    local name=$1; shift
    local dir; dir=$(corpus_dir "$name")
    if corpus_done "$name"; then
        echo "corpus $name: $dir (present)"; return 0
    fi
    command -v apt-get >/dev/null || { echo "corpus $name: needs Debian's apt-get" >&2; exit 1; }
    mkdir -p "$dir/debs"
    local tmp="$dir/data.partial.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    trap "rm -rf '$tmp'" EXIT
    (
        cd "$dir/debs"
        if ! apt-get download "$@" >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ]; then
                echo "corpus $name: refreshing apt's package lists" >&2
                apt-get update -qq
            fi
            apt-get download "$@" >&2 || {
                echo "corpus $name: apt-get download $* failed; run 'apt-get update' (as root) and retry" >&2
                exit 1
            }
        fi
    )
    : > "$dir/FETCHED.partial"
    for pkg in "$@"; do
        # Newest downloaded version of this package (older ones may linger in debs/).
        local deb; deb=$(ls -1 "$dir/debs/${pkg}_"*.deb | sort -V | tail -n 1)
        dpkg-deb --info "$deb" >/dev/null   # fails on a damaged archive
        dpkg-deb -x "$deb" "$tmp"
        echo "$pkg $(dpkg-deb -f "$deb" Version) sha256:$(sha256sum "$deb" | cut -d' ' -f1)" >> "$dir/FETCHED.partial"
    done
    rm -rf "$dir/data"
    mv "$tmp" "$dir/data"
    mv "$dir/FETCHED.partial" "$dir/FETCHED"
    trap - EXIT
    echo "corpus $name: $dir (fetched: $(tr '\n' ';' < "$dir/FETCHED"))"
}
