#!/bin/sh
# azd preprovision hook: give this azd environment callbridge's three secrets, once.
#
# A secret already set (32 characters or more) is kept, so re-running never rotates it; an empty
# one is generated; a short one is an error. Values go straight into the azd environment
# (.azure/<env>/.env, git-ignored), from where main.parameters.json passes them to @secure()
# parameters. Nothing here prints a secret.
set -eu

SECRETS="CALLBRIDGE_SIGNING_KEY CALLBRIDGE_WEBHOOK_SECRET CALLBRIDGE_API_KEY"
MIN_LENGTH=32

fail() {
    echo "preprovision: $*" >&2
    exit 1
}

# 64 hex characters (256 bits) from the system's CSPRNG. URL-safe as they are: the postdeploy
# hook puts CALLBRIDGE_WEBHOOK_SECRET in the subscription's query string without encoding it.
random_secret() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    else
        od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
    fi
}

command -v azd >/dev/null 2>&1 || fail "the Azure Developer CLI (azd) is not on PATH"

for name in $SECRETS; do
    current=$(azd env get-value "$name" 2>/dev/null) || current=""
    length=${#current}
    if [ "$length" -ge "$MIN_LENGTH" ]; then
        echo "preprovision: $name is set; kept"
        continue
    fi
    if [ "$length" -gt 0 ]; then
        fail "$name is shorter than $MIN_LENGTH characters; set a longer value or clear it (azd env set $name '') to have one generated"
    fi
    secret=$(random_secret)
    [ "${#secret}" -ge "$MIN_LENGTH" ] || fail "could not generate $name"
    azd env set "$name" "$secret" >/dev/null || fail "could not store $name in the azd environment"
    echo "preprovision: $name generated"
done
