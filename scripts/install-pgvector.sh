#!/usr/bin/env bash
# Makes PostgreSQL 15 and pgvector available for the Postgres tests (shared/pgtest).
#
# Debian 12 has no pgvector package for PostgreSQL 15, so this builds the
# source package of Debian 13 (trixie) against the local server headers. The
# source is fetched through a temporary apt configuration: the machine's own
# sources and package lists stay untouched. Safe to run again; it does nothing
# once vector.control is installed.
set -euo pipefail

readonly PG_BINDIR=/usr/lib/postgresql/15/bin
readonly PG_CONFIG=$PG_BINDIR/pg_config
readonly PACKAGES=(postgresql-15 postgresql-server-dev-15 build-essential)

log() { printf 'install-pgvector: %s\n' "$*"; }

# ensure_postgres_user creates the OS user that owns test clusters, should the
# packages have been installed in a way that did not create it.
ensure_postgres_user() {
	if id postgres >/dev/null 2>&1; then
		return
	fi
	log "creating the postgres system user"
	useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

# debian_mirror prints the URI of the machine's main Debian archive: an entry
# with the component "main" whose suite is the release's codename (or whose
# URI ends in /debian), skipping the security archive and third-party
# repositories. deb822 files come first, then classic one-line lists.
debian_mirror() {
	local codename="" f
	if [[ -r /etc/os-release ]]; then
		# shellcheck source=/dev/null
		codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
	fi
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk -v cn="$codename" '
			function reset() { types = ""; uris = ""; suites = ""; comps = ""; enabled = "yes"; key = "" }
			function has(list, word,   n, i, a) {
				n = split(list, a, /[ \t]+/)
				for (i = 1; i <= n; i++) if (a[i] == word) return 1
				return 0
			}
			function debian_suite(list,   n, i, a) {
				n = split(list, a, /[ \t]+/)
				for (i = 1; i <= n; i++) {
					if (a[i] ~ /-security$/) continue
					if (cn != "" && (a[i] == cn || a[i] ~ ("^" cn "-"))) return 1
				}
				return 0
			}
			function emit(   n, a) {
				if (uris == "" || tolower(enabled) == "no" || !has(types, "deb") && !has(types, "deb-src")) return 0
				if (!has(comps, "main") || suites ~ /-security/) return 0
				n = split(uris, a, /[ \t]+/)
				if (a[1] ~ /security/ || a[1] !~ /^https?:\/\//) return 0
				if (!debian_suite(suites) && a[1] !~ /\/debian\/?$/) return 0
				print a[1]
				return 1
			}
			BEGIN { reset() }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { if (emit()) { done = 1; exit } reset(); next }
			/^[ \t]/ { if (key == "uris") uris = uris " " $0; next }
			{
				key = tolower(substr($0, 1, index($0, ":") - 1))
				value = substr($0, index($0, ":") + 1)
				gsub(/^[ \t]+|[ \t]+$/, "", value)
				if (key == "types") types = value
				else if (key == "uris") uris = value
				else if (key == "suites") suites = value
				else if (key == "components") comps = value
				else if (key == "enabled") enabled = value
			}
			END { if (!done) emit() }
		' "$f" | head -n 1
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		awk -v cn="$codename" '
			{ sub(/#.*/, "") }
			$1 != "deb" && $1 != "deb-src" { next }
			{
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				uri = $i; suite = $(i + 1)
				main = 0
				for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
				if (!main || uri ~ /security/ || suite ~ /-security$/ || uri !~ /^https?:\/\//) next
				if ((cn == "" || (suite != cn && suite !~ ("^" cn "-"))) && uri !~ /\/debian\/?$/) next
				print uri
				exit
			}
		' "$f"
	done
}

sharedir=""
if [[ -x $PG_CONFIG ]]; then
	sharedir=$("$PG_CONFIG" --sharedir)
fi
if [[ -n $sharedir && -f $sharedir/extension/vector.control ]]; then
	log "pgvector is already installed in $sharedir/extension"
	if [[ $(id -u) -eq 0 ]]; then
		ensure_postgres_user
	fi
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	log "not root, cannot install PostgreSQL 15 and pgvector; tests that need them will skip (fail under CI=true)"
	exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done
if ((${#missing[@]} > 0)); then
	log "apt-get update"
	apt-get update -q >/dev/null
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
	log "${PACKAGES[*]} already installed"
fi
ensure_postgres_user

mirror=$(debian_mirror | head -n 1)
if [[ -z $mirror ]]; then
	log "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources" >&2
	exit 1
fi
log "using Debian mirror $mirror"

tmp=$(mktemp -d /tmp/install-pgvector.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/download"
printf 'deb-src %s trixie main\n' "$mirror" >"$tmp/sources.list"
# apt downloads as the unprivileged _apt user; letting it write the lists and
# the download directory avoids its "unsandboxed as root" warning.
chmod 755 "$tmp"
if id _apt >/dev/null 2>&1; then
	chown -R _apt "$tmp/lists" "$tmp/download"
fi
apt_tmp=(
	-o "Dir::Etc::sourcelist=$tmp/sources.list"
	-o "Dir::Etc::sourceparts=-"
	-o "Dir::State::Lists=$tmp/lists"
	-o "Dir::Cache::pkgcache="
	-o "Dir::Cache::srcpkgcache="
)

log "fetching the trixie source index"
apt-get "${apt_tmp[@]}" update -q >/dev/null
log "downloading the pgvector source package"
(cd "$tmp/download" && apt-get "${apt_tmp[@]}" source -q --download-only pgvector >/dev/null)
dsc=$(find "$tmp/download" -maxdepth 1 -name 'pgvector_*.dsc' | head -n 1)
if [[ -z $dsc ]]; then
	log "apt-get source did not download pgvector_*.dsc" >&2
	exit 1
fi
log "unpacking $(basename "$dsc")"
# apt has checked every file against the signed trixie index; the uploader's
# key in the .dsc is not in any local keyring, so dpkg-source need not try.
dpkg-source --no-check -x "$dsc" "$tmp/src" >/dev/null
log "building pgvector"
make -C "$tmp/src" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
log "installing pgvector"
make -C "$tmp/src" PG_CONFIG="$PG_CONFIG" install >/dev/null

if [[ ! -f $("$PG_CONFIG" --sharedir)/extension/vector.control ]]; then
	log "vector.control is still missing after make install" >&2
	exit 1
fi
log "done: pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$("$PG_CONFIG" --sharedir)/extension/vector.control")"
