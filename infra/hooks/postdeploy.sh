#!/bin/sh
# azd postdeploy hook: subscribe the app's webhook to ACS IncomingCall events.
#
# Event Grid validates a webhook when its subscription is created or updated, so this runs after
# `azd deploy`, once the real app answers: it waits (bounded) for /healthz, then creates the
# subscription on the system topic main.bicep declares, or brings an existing one up to date.
# Safe to re-run: `azd hooks run postdeploy`.
#
# Subscription: endpoint https://<app>/api/incomingCall?secret=<secret>, event type
# Microsoft.Communication.IncomingCall, static secret header x-callbridge-secret, at most 2
# delivery attempts and a 1-minute event time-to-live (a late IncomingCall is useless: the caller
# has hung up). If CALLBRIDGE_PHONE_NUMBER is set in the azd environment (E.164, several
# separated by commas), only calls to those numbers are sent.
#
# The secret (the app's CALLBRIDGE_WEBHOOK_SECRET) goes both in the query string and in the
# header. Event Grid sends the URL's query parameters with every delivery, the validation
# handshake included, and keeps them encrypted; it does not document sending delivery headers
# with the handshake, and the app checks the secret on every request. The URL with the secret is
# never printed: messages show the endpoint without its query string.
set -eu
set -f # no pathname expansion: phone numbers are split on whitespace, never globbed

SUBSCRIPTION_NAME=incoming-call
EVENT_TYPE=Microsoft.Communication.IncomingCall
SECRET_HEADER=x-callbridge-secret
MAX_DELIVERY_ATTEMPTS=2
EVENT_TTL_MINUTES=1
HEALTH_TIMEOUT_S=${POSTDEPLOY_HEALTH_TIMEOUT_S:-300}
HEALTH_INTERVAL_S=${POSTDEPLOY_HEALTH_INTERVAL_S:-5}

fail() {
    echo "postdeploy: $*" >&2
    exit 1
}

# A value of the azd environment: from the hook's environment (azd exports them), else from
# `azd env get-value` (when the script is run by hand).
env_value() {
    value=$(printenv "$1" 2>/dev/null) || value=""
    if [ -z "$value" ]; then
        value=$(azd env get-value "$1" 2>/dev/null) || value=""
    fi
    printf '%s' "$value"
}

# An output of infra/main.bicep; missing means the environment was never provisioned.
require_output() {
    value=$(env_value "$1")
    [ -n "$value" ] || fail "$1 is not set; run 'azd provision' first"
    printf '%s' "$value"
}

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not on PATH"
command -v curl >/dev/null 2>&1 || fail "curl is not on PATH"

app_url=$(require_output CALLBRIDGE_URL)
resource_group=$(require_output AZURE_RESOURCE_GROUP)
system_topic=$(require_output EVENTGRID_SYSTEM_TOPIC_NAME)
subscription_id=$(env_value AZURE_SUBSCRIPTION_ID)
secret=$(env_value CALLBRIDGE_WEBHOOK_SECRET)
[ "${#secret}" -ge 32 ] ||
    fail "CALLBRIDGE_WEBHOOK_SECRET is missing or shorter than 32 characters; run 'azd provision' (its preprovision hook generates it)"
# The secret goes into the URL as it is: the preprovision hook generates 64 hex characters, which
# need no percent-encoding. One set by hand must keep to URL-unreserved characters too.
# (Spelled out rather than as ranges, which some shells read by locale.)
URL_UNRESERVED=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-
case $secret in
    *[!$URL_UNRESERVED]*)
        fail "CALLBRIDGE_WEBHOOK_SECRET may only use letters, digits, '-', '_', '.' and '~' (it goes into the subscription's URL); clear it (azd env set CALLBRIDGE_WEBHOOK_SECRET '') and run 'azd up' to have one generated"
        ;;
esac

phone_numbers=""
for number in $(env_value CALLBRIDGE_PHONE_NUMBER | tr ',;' '  '); do
    case $number in
        +*[!0-9]*) fail "CALLBRIDGE_PHONE_NUMBER: '$number' is not an E.164 number (+ and digits)" ;;
        +[1-9]??????*) phone_numbers="${phone_numbers:+$phone_numbers }$number" ;;
        *) fail "CALLBRIDGE_PHONE_NUMBER: '$number' is not an E.164 number (+ and digits)" ;;
    esac
done

app_url=${app_url%/}
# What messages show; delivery_url, with the secret, is only ever passed to az.
endpoint="$app_url/api/incomingCall"
delivery_url="${endpoint}?secret=${secret}"

az account show --output none >/dev/null 2>&1 || fail "the Azure CLI is not signed in; run 'az login'"

# 1. Wait until the app serves: Event Grid's validation handshake needs it.
echo "postdeploy: waiting for $app_url/healthz (up to ${HEALTH_TIMEOUT_S}s)"
waited=0
step=$HEALTH_INTERVAL_S
[ "$step" -ge 1 ] || step=1 # count at least 1 s per attempt, so the wait always ends
until curl --silent --fail --output /dev/null --max-time 5 "$app_url/healthz"; do
    if [ "$waited" -ge "$HEALTH_TIMEOUT_S" ]; then
        fail "$app_url/healthz did not answer within ${HEALTH_TIMEOUT_S}s; check the app's logs (az containerapp logs show), then re-run: azd hooks run postdeploy"
    fi
    sleep "$HEALTH_INTERVAL_S"
    waited=$((waited + step))
done

# 2. Create the subscription, or update it.
# Run `az eventgrid system-topic event-subscription <action>` for this subscription. The CLI's
# `create` is a create-or-update (PUT) that sets every property; its `update` keeps the retry
# policy and any filter it is not given.
subscription() {
    action=$1
    shift
    set -- eventgrid system-topic event-subscription "$action" \
        --resource-group "$resource_group" \
        --system-topic-name "$system_topic" \
        --name "$SUBSCRIPTION_NAME" \
        --only-show-errors "$@"
    if [ -n "$subscription_id" ]; then
        set -- "$@" --subscription "$subscription_id"
    fi
    az "$@"
}

# Run create or update with the full desired configuration.
subscribe() {
    action=$1
    set -- --endpoint "$delivery_url" \
        --endpoint-type webhook \
        --included-event-types "$EVENT_TYPE" \
        --delivery-attribute-mapping "$SECRET_HEADER" static "$secret" true
    if [ "$action" = create ]; then
        set -- "$@" --event-delivery-schema eventgridschema \
            --max-delivery-attempts "$MAX_DELIVERY_ATTEMPTS" \
            --event-ttl "$EVENT_TTL_MINUTES"
    fi
    if [ -n "$phone_numbers" ]; then
        set -- "$@" --advanced-filter data.to.PhoneNumber.Value StringIn
        for number in $phone_numbers; do
            set -- "$@" "$number"
        done
    fi
    subscription "$action" "$@" --output none ||
        fail "could not $action the Event Grid subscription (Event Grid must reach $endpoint); re-run: azd hooks run postdeploy"
}

# "<max delivery attempts>,<event TTL>,<number of advanced filters>" of the existing subscription.
state_query='join(`","`, [to_string(retryPolicy.maxDeliveryAttempts), to_string(retryPolicy.eventTimeToLiveInMinutes), to_string(length(filter.advancedFilters || `[]`))])'
if state=$(subscription show --query "$state_query" --output tsv 2>/dev/null); then
    attempts=${state%%,*}
    rest=${state#*,}
    ttl=${rest%%,*}
    filters=${rest#*,}
    if [ "$attempts" != "$MAX_DELIVERY_ATTEMPTS" ] || [ "$ttl" != "$EVENT_TTL_MINUTES" ]; then
        echo "postdeploy: retry policy is $attempts attempts / ${ttl} min; replacing it"
        subscribe create
    elif [ -z "$phone_numbers" ] && [ "$filters" != 0 ]; then
        echo "postdeploy: CALLBRIDGE_PHONE_NUMBER is unset; removing the number filter"
        subscribe create
    else
        subscribe update
    fi
    echo "postdeploy: Event Grid subscription '$SUBSCRIPTION_NAME' updated"
else
    subscribe create
    echo "postdeploy: Event Grid subscription '$SUBSCRIPTION_NAME' created"
fi

echo "postdeploy: IncomingCall events for ${phone_numbers:-every number of the resource} go to $endpoint"
