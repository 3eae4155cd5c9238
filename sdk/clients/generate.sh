#!/usr/bin/env bash
# Regenerates the client SDKs' generated code from the OpenAPI documents in
# sdk/openapi/ (committed; the servers produce them). With --check nothing is
# written: it fails when the committed generated code differs from what the
# documents give now (spec drift), naming the files. CI runs the check.
#
#   sdk/clients/generate.sh [--check] [LANG...]      (default: every language)
#
# Each language is one section below: a gen_<lang> function that writes its
# generated files into the directory it is given ($1), laid out as under
# sdk/clients/<lang>/, and a `publish <lang> <that dir> <paths...>` call that
# copies those paths into the client (or, with --check, compares them).
# Generators are pinned here or in the client's own build files, and their
# downloads are cached under $HERALD_CACHE (default ~/.cache/herald).
set -euo pipefail
cd "$(dirname "$0")"
clients=$PWD
openapi=${HERALD_OPENAPI_DIR:-$(cd ../openapi && pwd)}  # another directory: e.g. a spec a server serves
cache=${HERALD_CACHE:-$HOME/.cache/herald}

check=0
langs=()
for arg in "$@"; do
  case $arg in
    --check) check=1 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "generate.sh: unknown option $arg" >&2; exit 2 ;;
    *) langs+=("$arg") ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
drift=()

# publish LANG GENERATED_DIR PATH...: each PATH (a file or a directory,
# relative to sdk/clients/LANG) as generated replaces the client's; with
# --check, a difference is reported instead.
publish() {
  local lang=$1 out=$2 path
  shift 2
  for path in "$@"; do
    [ -e "$out/$path" ] || { echo "generate.sh: $lang: the generator made no $path" >&2; exit 1; }
    if [ $check = 1 ]; then
      if ! diff -ruN "$lang/$path" "$out/$path" >"$work/$lang.diff" 2>&1; then
        head -n 40 "$work/$lang.diff" >&2
        drift+=("$lang/$path")
      fi
    else
      rm -rf "${lang:?}/$path"
      mkdir -p "$(dirname "$lang/$path")"
      cp -R "$out/$path" "$lang/$path"
    fi
  done
}

# --- Go: types.gen.go, oapi-codegen `-generate types` (config: go/oapi-codegen.yaml) ---
OAPI_CODEGEN=github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2
gen_go() {
  local out=$1
  mkdir -p "$out"
  (cd go && GOPATH=${GOPATH:-$cache/go} GOMODCACHE=${GOMODCACHE:-$cache/go/pkg/mod} GOFLAGS=-modcacherw \
    go run "$OAPI_CODEGEN" -config oapi-codegen.yaml -o "$out/types.gen.go" "$openapi/gateway.json")
  publish go "$out" types.gen.go
}

# --- Java: the models, openapi-generator's maven plugin (java/pom.xml, profile "generate") ---
gen_java() {
  local out=$1
  (cd java && mvn -B -q -Dstyle.color=never -Pgenerate generate-sources -Dmaven.repo.local="$cache/m2" \
    -Dherald.spec="$openapi/gateway.json" -Dherald.generate.out="$out")
  publish java "$out" src/main/java/dev/herald/client/model
}

# --- Python: herald_client/models.py, TypedDicts by datamodel-code-generator (pinned in python/requirements-dev.txt) ---
gen_python() {
  local out=$1 bin
  bin=$(python/tools.sh)
  mkdir -p "$out/herald_client"
  "$bin/datamodel-codegen" --input "$openapi/gateway.json" --input-file-type openapi --output "$out/herald_client/models.py" \
    --output-model-type typing.TypedDict --target-python-version 3.10 --formatters builtin \
    --use-standard-collections --use-union-operator --use-schema-description --use-field-description \
    --enum-field-as-literal all --use-double-quotes --strict-nullable --use-type-alias --disable-timestamp \
    --custom-file-header "# Generated from sdk/openapi/gateway.json by sdk/clients/generate.sh (datamodel-code-generator): do not edit."
  publish python "$out" herald_client/models.py
}

# --- TypeScript: src/gateway.ts, openapi-typescript (pinned in typescript/package.json) ---
gen_typescript() {
  local out=$1 bin
  bin=$(typescript/tools.sh)
  mkdir -p "$out/src"
  "$bin/openapi-typescript" "$openapi/gateway.json" --empty-objects-unknown -o "$out/src/gateway.ts" >/dev/null
  publish typescript "$out" src/gateway.ts
}

all=(go java python typescript)
[ ${#langs[@]} -gt 0 ] || langs=("${all[@]}")
for lang in "${langs[@]}"; do
  declare -F "gen_$lang" >/dev/null || { echo "generate.sh: no generator for $lang (have: ${all[*]})" >&2; exit 2; }
  [ $check = 1 ] && echo "== generate.sh --check: $lang" || echo "== generate.sh: $lang"
  "gen_$lang" "$work/$lang"
done

if [ ${#drift[@]} -gt 0 ]; then
  echo "generate.sh: generated code differs from sdk/openapi/ (run sdk/clients/generate.sh and commit): ${drift[*]}" >&2
  exit 1
fi
